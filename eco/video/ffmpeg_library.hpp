#pragma once
// FFmpeg's libraries, opened the first time a video or PNG is decoded instead of linked into the
// program: with their own dependencies (codecs, TLS, XML, fonts: about 130 shared libraries) they
// took some 21 MB of every process's resident memory, and their loading its start, where a run on
// tensors, a cost count or a benchmark uses none of them. The functions video_file.cpp and
// image_file.cpp call are looked up once per process (dlopen by the sonames of the headers built
// against, dlsym) and called through lib().
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <span>
#include <string>

namespace ecocpu::video::ffmpeg {

#define ECOCPU_FFMPEG_FUNCTIONS(X)                                                                           \
  X(av_dict_free) X(av_dict_set) X(av_dict_set_int) X(av_display_rotation_get) X(av_find_best_stream)       \
  X(av_frame_alloc) X(av_frame_copy_props) X(av_frame_free) X(av_frame_get_buffer) X(av_frame_get_side_data) \
  X(av_frame_unref) X(av_free) X(av_freep) X(av_get_pix_fmt_name) X(av_image_fill_max_pixsteps)             \
  X(av_log_set_level) X(av_malloc) X(av_new_packet) X(av_packet_alloc) X(av_packet_free) X(av_packet_unref)  \
  X(av_pix_fmt_count_planes) X(av_pix_fmt_desc_get) X(av_read_frame) X(av_shrink_packet)                    \
  X(av_stream_get_side_data) X(av_strerror) X(avcodec_alloc_context3) X(avcodec_find_decoder)               \
  X(avcodec_free_context) X(avcodec_get_name) X(avcodec_open2) X(avcodec_parameters_to_context)             \
  X(avcodec_receive_frame) X(avcodec_send_packet) X(avformat_alloc_context) X(avformat_close_input)         \
  X(avformat_find_stream_info) X(avformat_open_input) X(avio_alloc_context) X(avio_context_free)            \
  X(sws_freeContext) X(sws_getCoefficients) X(sws_getColorspaceDetails) X(sws_getContext) X(sws_scale)       \
  X(sws_setColorspaceDetails)

struct Library {
#define ECOCPU_FFMPEG_POINTER(name) decltype(&::name) name = nullptr;
  ECOCPU_FFMPEG_FUNCTIONS(ECOCPU_FFMPEG_POINTER)
#undef ECOCPU_FFMPEG_POINTER
};

// The libraries by soname, dependencies first: libavutil, libswscale, libavcodec and libavformat
// of the major versions the headers declare.
std::span<const char* const> sonames();

// Opens `libraries` (dlopen, kept open) and looks every function up in them. Throws
// std::runtime_error naming the library that cannot be opened or the function none of them has.
Library open_library(std::span<const char* const> libraries);

// The loaded functions, for a file at `path`: the first call opens sonames(); a failure throws
// FileError "<path>: cannot decode it: <cause>" (and is tried again by the next call).
const Library& lib(const std::string& path);

// The functions once lib(path) has succeeded (the objects' deleters, error texts).
const Library& lib();

}  // namespace ecocpu::video::ffmpeg
