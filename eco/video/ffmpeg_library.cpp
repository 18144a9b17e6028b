#include "eco/video/ffmpeg_library.hpp"

#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "eco/io/mapped_file.hpp"

namespace ecocpu::video::ffmpeg {

namespace {

#define ECOCPU_SONAME(lib, major) "lib" lib ".so." AV_STRINGIFY(major)
constexpr const char* kSonames[] = {
    ECOCPU_SONAME("avutil", LIBAVUTIL_VERSION_MAJOR), ECOCPU_SONAME("swscale", LIBSWSCALE_VERSION_MAJOR),
    ECOCPU_SONAME("avcodec", LIBAVCODEC_VERSION_MAJOR), ECOCPU_SONAME("avformat", LIBAVFORMAT_VERSION_MAJOR)};
#undef ECOCPU_SONAME

void* find(const std::vector<void*>& handles, const char* name) {
  for (void* h : handles) {
    if (void* f = dlsym(h, name)) return f;
  }
  throw std::runtime_error(std::string("FFmpeg's libraries have no ") + name);
}

std::mutex loading;                    // one thread opens the libraries
std::atomic<const Library*> loaded;  // set once; never freed (the libraries stay open)

}  // namespace

std::span<const char* const> sonames() { return kSonames; }

Library open_library(std::span<const char* const> libraries) {
  std::vector<void*> handles;
  try {
    for (const char* name : libraries) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        const char* why = dlerror();
        throw std::runtime_error(std::string("FFmpeg's ") + name + " cannot be loaded (" +
                                 (why ? why : "dlopen failed") + ")");
      }
      handles.push_back(h);
    }
    Library l;
#define ECOCPU_FFMPEG_LOOKUP(name) l.name = reinterpret_cast<decltype(l.name)>(find(handles, #name));
    ECOCPU_FFMPEG_FUNCTIONS(ECOCPU_FFMPEG_LOOKUP)
#undef ECOCPU_FFMPEG_LOOKUP
    return l;  // the libraries stay open: the functions live in them
  } catch (...) {
    for (void* h : handles) dlclose(h);  // a failed attempt leaves nothing loaded
    throw;
  }
}

const Library& lib(const std::string& path) {
  if (const Library* l = loaded.load(std::memory_order_acquire)) return *l;
  const std::lock_guard<std::mutex> lock(loading);
  if (loaded.load(std::memory_order_relaxed) == nullptr) {
    try {
      loaded.store(new Library(open_library(sonames())), std::memory_order_release);
    } catch (const std::runtime_error& e) {
      throw FileError(path + ": cannot decode it: " + e.what());
    }
  }
  return *loaded.load(std::memory_order_relaxed);
}

const Library& lib() {
  const Library* l = loaded.load(std::memory_order_acquire);
  if (l == nullptr) throw std::logic_error("FFmpeg's functions called before lib(path) loaded them");
  return *l;
}

}  // namespace ecocpu::video::ffmpeg
