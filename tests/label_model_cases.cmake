# Run by ctest after doctest's discovery (TEST_INCLUDE_FILES, see tests/CMakeLists.txt): the
# doctest cases that build and run ECO-size models get the label `model`, the others `unit`.
foreach(test IN LISTS ecocpu_tests_TESTS)
  if(test MATCHES "^(plan|definitions): " OR test MATCHES "^online model: " OR test MATCHES "^counter: (every row|ECO Lite's|the class count)")
    set_tests_properties("${test}" PROPERTIES LABELS model)
  else()
    set_tests_properties("${test}" PROPERTIES LABELS unit)
  endif()
endforeach()
