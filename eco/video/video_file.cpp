// How a video is read: one demux-only pass counts the stream's packets (n) and, when each has
// its own pts, ranks them into presentation order. The sampler picks frames of n; a second pass
// decodes from the start only up to the last packet holding a sampled frame, tells frames apart
// by their pts, has the decoder drop non-reference frames that are not sampled, and converts
// only sampled frames to RGB. When the frames coming out do not match the packets (a packet that
// decodes to nothing, timestamps missing or repeated), the decoder's own frames are counted and
// the sampler asked again, as the `ffmpeg` command numbers frames: every frame the decoder gives
// out, in order (-vsync passthrough). The sequential source is that numbering itself: one pass
// through the same decoder core, every frame converted as it comes out.
#include "eco/video/video_file.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eco/video/ffmpeg_objects.hpp"
#include "eco/video/frame_source.hpp"

namespace ecocpu::video {
namespace {

using ffmpeg::lib;

// A file holding more packets than this is refused: indexing them keeps two 8-byte values each.
constexpr int64_t kMaxPackets = 10'000'000;
constexpr int kIoBufferSize = 1 << 16;

// ---------------------------------------------------------------------------------------------
// FFmpeg objects, each freed by its own function.

struct FormatContextDeleter {
  void operator()(AVFormatContext* c) const { lib().avformat_close_input(&c); }
};
struct IoContextDeleter {
  void operator()(AVIOContext* c) const {
    if (c != nullptr) lib().av_freep(&c->buffer);  // FFmpeg may have swapped the buffer: free its current one
    lib().avio_context_free(&c);
  }
};
struct BufferDeleter {
  void operator()(uint8_t* p) const { lib().av_free(p); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using IoContextPtr = std::unique_ptr<AVIOContext, IoContextDeleter>;
using ffmpeg::CodecContextPtr;
using ffmpeg::FramePtr;
using ffmpeg::PacketPtr;
using ffmpeg::SwsPtr;

// The per-stream option dictionaries avformat_find_stream_info takes.
class StreamOptions {
 public:
  explicit StreamOptions(unsigned count) : dicts_(count, nullptr) {}
  ~StreamOptions() {
    for (AVDictionary*& d : dicts_) lib().av_dict_free(&d);
  }
  StreamOptions(const StreamOptions&) = delete;
  StreamOptions& operator=(const StreamOptions&) = delete;
  AVDictionary** data() { return dicts_.data(); }
  void set_all(const char* key, int64_t value) {
    for (AVDictionary*& d : dicts_) lib().av_dict_set_int(&d, key, value, 0);
  }

 private:
  std::vector<AVDictionary*> dicts_;
};

[[noreturn]] void fail(const MappedFile& file, const std::string& cause) {
  throw FileError(file.path() + ": " + cause);
}

FramePtr new_frame() {
  FramePtr frame(lib().av_frame_alloc());
  if (!frame) throw std::bad_alloc();
  return frame;
}

// A frame of this format and size with its own pixel buffers.
FramePtr new_frame(const MappedFile& file, int format, int width, int height) {
  FramePtr frame = new_frame();
  frame->format = format;
  frame->width = width;
  frame->height = height;
  const int error = lib().av_frame_get_buffer(frame.get(), 0);
  if (error == AVERROR(ENOMEM)) throw std::bad_alloc();
  if (error < 0) {
    fail(file, "cannot hold a " + std::to_string(width) + "x" + std::to_string(height) + " frame (" +
                   ffmpeg::reason(error) + ")");
  }
  return frame;
}

// FFmpeg's C enums hold what the stream says: a colour field may carry a value no enumerator
// has (H.264 stores 8 bits of it), which C++ may not load as the enum. They are read as ints.
template <typename Enum>
int enum_value(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int));
  int value = 0;
  std::memcpy(&value, &field, sizeof(value));
  return value;
}

PacketPtr new_packet() {
  PacketPtr packet(lib().av_packet_alloc());
  if (!packet) throw std::bad_alloc();
  return packet;
}

// ---------------------------------------------------------------------------------------------
// Reading: FFmpeg sees the mapped bytes and nothing else.

struct ByteSource {
  const uint8_t* data = nullptr;
  int64_t size = 0;
  int64_t position = 0;
};

int read_bytes(void* opaque, uint8_t* buffer, int buffer_size) {
  auto* source = static_cast<ByteSource*>(opaque);
  const int64_t count = std::min<int64_t>(buffer_size, source->size - source->position);
  if (count <= 0) return AVERROR_EOF;
  std::memcpy(buffer, source->data + source->position, static_cast<std::size_t>(count));
  source->position += count;
  return static_cast<int>(count);
}

int64_t seek_bytes(void* opaque, int64_t offset, int whence) {
  auto* source = static_cast<ByteSource*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return source->size;
  int64_t base = 0;
  if (whence == SEEK_CUR) {
    base = source->position;
  } else if (whence == SEEK_END) {
    base = source->size;
  } else if (whence != SEEK_SET) {
    return AVERROR(EINVAL);
  }
  // Compared before adding, so that a crafted offset near INT64_MAX cannot overflow.
  if (offset < -base || offset > source->size - base) return AVERROR(EINVAL);
  source->position = base + offset;
  return source->position;
}

// Demuxers that name other resources (HLS and DASH playlists, image sequences, ...) open them
// through this callback: every such request is refused, and the name kept for the error.
int refuse_to_open(AVFormatContext* format, AVIOContext**, const char* url, int, AVDictionary**) {
  if (format->opaque != nullptr && url != nullptr) static_cast<std::string*>(format->opaque)->assign(url);
  return AVERROR(EPERM);
}

// A name taken from the file, fit for a one-line message: control bytes become '?', and a long
// one is cut.
std::string printable(const std::string& text) {
  constexpr std::size_t kMaxShown = 80;
  std::string shown = text.substr(0, kMaxShown);
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text.size() > kMaxShown ? shown + "..." : shown;
}

// Refuses a stream whose declared frame size is out of bounds before anything is decoded. A
// size of 0 is unknown (raw streams before decoding): the decoder's max_pixels bounds it.
void check_declared_size(const MappedFile& file, const AVStream& stream) {
  const AVCodecParameters& par = *stream.codecpar;
  const bool unknown = par.width == 0 || par.height == 0;
  if ((!unknown && !within_frame_bounds(par.width, par.height)) || par.width < 0 || par.height < 0) {
    fail(file, frame_size_refusal(par.width, par.height));
  }
}

// One opened container over the file's bytes, reading the packets of its best video stream.
class Demuxer {
 public:
  explicit Demuxer(const MappedFile& file) : file_(file) {
    source_ = {file.data(), static_cast<int64_t>(file.size()), 0};
    open_container();
    find_stream_info();
    pick_video_stream();
    check_declared_size(file, stream());
  }

  AVStream& stream() const { return *format_->streams[stream_index_]; }

  // The next packet of the video stream into `packet`; false at the end. A read error ends the
  // stream, as it ends the `ffmpeg` command's input.
  bool next(AVPacket* packet) {
    while (true) {
      lib().av_packet_unref(packet);
      if (lib().av_read_frame(format_.get(), packet) < 0) return false;
      if (packet->stream_index == stream_index_) return true;
    }
  }

 private:
  void open_container() {
    auto* buffer = static_cast<uint8_t*>(lib().av_malloc(kIoBufferSize));
    if (buffer == nullptr) throw std::bad_alloc();
    io_.reset(lib().avio_alloc_context(buffer, kIoBufferSize, 0, &source_, read_bytes, nullptr, seek_bytes));
    if (!io_) {
      lib().av_free(buffer);
      throw std::bad_alloc();
    }
    AVFormatContext* format = lib().avformat_alloc_context();
    if (format == nullptr) throw std::bad_alloc();
    format->pb = io_.get();
    format->flags |= AVFMT_FLAG_CUSTOM_IO;
    format->io_open = refuse_to_open;
    format->opaque = &refused_url_;
    // No protocol at all: a demuxer that opens a nested input with its own context (concat
    // lists) inherits this list, which matches no protocol name.
    AVDictionary* options = nullptr;
    lib().av_dict_set(&options, "protocol_whitelist", "", 0);
    // An empty URL: the format is probed from the bytes alone, never from the file name (which
    // would pick the image-sequence demuxer for "x.png", and it opens files by name).
    const int error = lib().avformat_open_input(&format, "", nullptr, &options);
    lib().av_dict_free(&options);
    if (error < 0 && !refused_url_.empty()) {
      fail(file_, "refers to another file or URL (" + printable(refused_url_) + "); only the file itself is read");
    }
    if (error < 0) fail(file_, "not a video file FFmpeg can read (" + ffmpeg::reason(error) + ")");
    format_.reset(format);
  }

  // Fills in what the container's header leaves out (raw streams declare nothing). Its trial
  // decoding is bounded like ours; a failure is not fatal, as for the `ffmpeg` command.
  void find_stream_info() {
    StreamOptions options(format_->nb_streams);
    options.set_all("max_pixels", kMaxFramePixels);
    lib().avformat_find_stream_info(format_.get(), options.data());
  }

  void pick_video_stream() {
    stream_index_ = lib().av_find_best_stream(format_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    // A cover picture (an audio file's artwork) is a still, not a video.
    if (stream_index_ < 0 || (format_->streams[stream_index_]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      fail(file_, "no video stream");
    }
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      format_->streams[i]->discard = static_cast<int>(i) == stream_index_ ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    }
  }

  const MappedFile& file_;
  ByteSource source_;
  std::string refused_url_;
  IoContextPtr io_;          // declared before format_: the container is closed first
  FormatContextPtr format_;
  int stream_index_ = -1;
};

// Packets that become a displayed frame: a packet flagged for discarding is decoded only as a
// reference, and an empty one holds nothing (sending it would end the stream).
bool makes_frame(const AVPacket& packet) {
  return packet.size > 0 && !(packet.flags & AV_PKT_FLAG_DISCARD);
}

// ---------------------------------------------------------------------------------------------
// Counting: a demux-only pass.

// The stream's frames as its packets give them: how many, and when every packet has its own
// pts, which frame (in presentation order) each packet holds.
struct PacketIndex {
  int64_t frame_count = 0;
  std::vector<int64_t> pts_in_decode_order;  // of the packets that make a frame; empty if unusable
  std::vector<int64_t> sorted_pts;           // the same values sorted: a pts' rank is its frame

  bool identifies_frames() const { return !sorted_pts.empty(); }

  // The presentation index of the frame with this pts, or -1.
  int64_t frame_of(int64_t pts) const {
    const auto it = std::lower_bound(sorted_pts.begin(), sorted_pts.end(), pts);
    if (it == sorted_pts.end() || *it != pts) return -1;
    return it - sorted_pts.begin();
  }
};

PacketIndex index_packets(const MappedFile& file) {
  Demuxer demuxer(file);
  PacketIndex index;
  bool pts_usable = true;
  const PacketPtr packet = new_packet();
  for (int64_t packets = 1; demuxer.next(packet.get()); ++packets) {
    if (packets > kMaxPackets) fail(file, "more than " + std::to_string(kMaxPackets) + " video packets");
    if (!makes_frame(*packet)) continue;
    ++index.frame_count;
    pts_usable = pts_usable && packet->pts != AV_NOPTS_VALUE;
    if (pts_usable) index.pts_in_decode_order.push_back(packet->pts);
  }
  if (pts_usable) {
    index.sorted_pts = index.pts_in_decode_order;
    std::sort(index.sorted_pts.begin(), index.sorted_pts.end());
    pts_usable = std::adjacent_find(index.sorted_pts.begin(), index.sorted_pts.end()) == index.sorted_pts.end();
  }
  if (!pts_usable) {
    index.pts_in_decode_order.clear();
    index.sorted_pts.clear();
  }
  return index;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

class Decoder {
 public:
  Decoder(const MappedFile& file, const AVStream& stream, int threads) {
    const AVCodec* codec = lib().avcodec_find_decoder(stream.codecpar->codec_id);
    if (codec == nullptr) {
      fail(file, std::string("no decoder for the video codec '") + lib().avcodec_get_name(stream.codecpar->codec_id) + "'");
    }
    context_.reset(lib().avcodec_alloc_context3(codec));
    if (!context_) throw std::bad_alloc();
    int error = lib().avcodec_parameters_to_context(context_.get(), stream.codecpar);
    if (error >= 0) {
      context_->pkt_timebase = stream.time_base;
      context_->thread_count = std::max(threads, 0);
      context_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
      // A stream whose frames grow mid-way is refused by the decoder itself past this size.
      context_->max_pixels = kMaxFramePixels;
      error = lib().avcodec_open2(context_.get(), codec, nullptr);
    }
    if (error < 0) {
      fail(file, std::string("cannot open the ") + codec->name + " decoder (" + ffmpeg::reason(error) + ")");
    }
  }

  // How much of the next packets' frames to decode: AVDISCARD_NONREF drops frames that no
  // other frame refers to, AVDISCARD_DEFAULT decodes everything.
  void set_skip(AVDiscard skip) { context_->skip_frame = skip; }

  // Sends one packet (nullptr: the end of the stream). False when the decoder's output is full
  // and `may_refuse`: its frames must be received first, and the packet sent again. FFmpeg takes
  // it then; a refusal of the second sending is kept as a decoding error, so that a decoder stuck
  // in that state cannot hold the reading in a loop.
  bool send(const AVPacket* packet, bool may_refuse) {
    const int status = lib().avcodec_send_packet(context_.get(), packet);
    if (status == AVERROR(EAGAIN) && may_refuse) return false;
    if (status < 0 && status != AVERROR_EOF) last_error_ = status;
    sent_ += packet != nullptr ? 1 : 0;
    ended_ = ended_ || packet == nullptr;
    return true;
  }

  // The next frame the decoder has ready, valid until the next call; nullptr when it wants
  // another packet, or once it has given out all it holds after the end. Decoding errors are
  // kept, not thrown: like the `ffmpeg` command, decoding goes on and a frame that fails does
  // not come out. After the end it takes all it holds, past errors (the `ffmpeg` command
  // flushes again after one): a frame-threaded decoder reports a failed frame while later ones
  // are still waiting.
  AVFrame* receive() {
    lib().av_frame_unref(frame_.get());
    while (true) {
      const int status = lib().avcodec_receive_frame(context_.get(), frame_.get());
      if (status >= 0) return frame_.get();
      if (status == AVERROR(EAGAIN) || status == AVERROR_EOF) return nullptr;
      last_error_ = status;
      if (!ended_ || ++errors_after_end_ > sent_) return nullptr;  // each error is one packet's frame
    }
  }

  // Whether the end of the stream was sent: receive() giving nothing then means nothing is left.
  bool ended() const { return ended_; }
  int last_error() const { return last_error_; }

 private:
  CodecContextPtr context_;
  FramePtr frame_ = new_frame();
  int64_t sent_ = 0;
  int64_t errors_after_end_ = 0;
  bool ended_ = false;
  int last_error_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Orientation: the `ffmpeg` command's autorotate, from the display matrix.

// out(row, col) = in(R, C). Without transpose R, C are row and col, each flipped or not; with
// it, R comes from col and C from row.
struct Orientation {
  bool transpose = false;
  bool flip_rows = false;  // R counts from the bottom of the input
  bool flip_cols = false;  // C counts from the right of the input
  int clockwise_degrees = 0;

  bool identity() const { return !transpose && !flip_rows && !flip_cols; }
};

const int32_t* display_matrix(const AVFrame& frame, const AVStream& stream) {
  constexpr std::size_t kMatrixBytes = 9 * sizeof(int32_t);
  if (const AVFrameSideData* side = lib().av_frame_get_side_data(&frame, AV_FRAME_DATA_DISPLAYMATRIX);
      side != nullptr && side->size >= kMatrixBytes) {
    return reinterpret_cast<const int32_t*>(side->data);
  }
  std::size_t size = 0;
  const uint8_t* data = lib().av_stream_get_side_data(&stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  return data != nullptr && size >= kMatrixBytes ? reinterpret_cast<const int32_t*>(data) : nullptr;
}

// The `ffmpeg` command (5.1) takes the frame's matrix, else the stream's, computes
// theta = -round(rotation) folded into [0, 360), and within a degree of 90 inserts
// transpose=clock (cclock_flip when the matrix also mirrors), of 180 hflip and/or vflip, of 270
// transpose=cclock (clock_flip when mirrored), of 0 a vflip for a vertically mirrored matrix.
// Any other angle it hands to the rotate filter, which fills corners with black: that is left
// out here, and such frames are kept as stored (rotation_degrees 0).
Orientation orientation_of(const int32_t* matrix) {
  Orientation o;
  if (matrix == nullptr) return o;
  double theta = -std::round(lib().av_display_rotation_get(matrix));
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  if (!std::isfinite(theta)) return o;  // a degenerate (all-zero) matrix has no angle
  if (std::fabs(theta - 90) < 1.0) {
    o.transpose = true;
    o.flip_rows = matrix[3] <= 0;  // clock; cclock_flip flips neither
    o.clockwise_degrees = 90;
  } else if (std::fabs(theta - 180) < 1.0) {
    o.flip_cols = matrix[0] < 0;
    o.flip_rows = matrix[4] < 0;
    o.clockwise_degrees = 180;
  } else if (std::fabs(theta - 270) < 1.0) {
    o.transpose = true;
    o.flip_cols = true;               // cclock
    o.flip_rows = matrix[3] < 0;      // clock_flip flips both
    o.clockwise_degrees = 270;
  } else if (std::fabs(theta) < 1.0) {
    o.flip_rows = matrix[4] < 0;
  }
  return o;
}

// Moves the pixels of one plane (`step` bytes each, w x h of them) into their oriented places.
void orient_plane(const uint8_t* src, ptrdiff_t src_stride, int w, int h, int step, uint8_t* dst,
                  ptrdiff_t dst_stride, const Orientation& o) {
  const int out_w = o.transpose ? h : w;
  const int out_h = o.transpose ? w : h;
  const auto step_bytes = static_cast<std::size_t>(step);
  if (!o.transpose && !o.flip_cols) {  // whole rows keep their order
    for (int row = 0; row < out_h; ++row) {
      std::memcpy(dst + row * dst_stride, src + (o.flip_rows ? h - 1 - row : row) * src_stride, step_bytes * w);
    }
    return;
  }
  for (int row = 0; row < out_h; ++row) {
    uint8_t* out = dst + row * dst_stride;
    for (int col = 0; col < out_w; ++col) {
      const int r = o.transpose ? col : row;
      const int c = o.transpose ? row : col;
      const int in_row = o.flip_rows ? h - 1 - r : r;
      const int in_col = o.flip_cols ? w - 1 - c : c;
      const uint8_t* in = src + in_row * src_stride + static_cast<ptrdiff_t>(in_col) * step;
      std::memcpy(out + static_cast<ptrdiff_t>(col) * step, in, step_bytes);
    }
  }
}

// Whether the `ffmpeg` command orients frames of this format before converting them to RGB:
// transpose, hflip and vflip take most formats as they are, and the colour conversion of a
// subsampled format does not commute with flipping it. Palette and bit-packed formats, and
// those the filters refuse, are converted first (their conversion is per pixel, so the order
// does not matter for them).
bool orients_before_conversion(AVPixelFormat format, const Orientation& o) {
  const AVPixFmtDescriptor* desc = lib().av_pix_fmt_desc_get(format);
  if (desc == nullptr || (desc->flags & (AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL))) {
    return false;
  }
  const bool square_subsampling = desc->log2_chroma_w == desc->log2_chroma_h;
  if (o.transpose) return square_subsampling;
  const bool packed_chroma = desc->nb_components > 1 && desc->comp[0].plane == desc->comp[1].plane;
  return !o.flip_cols || square_subsampling || !packed_chroma;  // hflip refuses packed 4:2:2
}

FramePtr oriented_copy(const MappedFile& file, const AVFrame& in, const Orientation& o) {
  FramePtr out = o.transpose ? new_frame(file, in.format, in.height, in.width)
                              : new_frame(file, in.format, in.width, in.height);
  if (lib().av_frame_copy_props(out.get(), &in) < 0) throw std::bad_alloc();
  const auto format = static_cast<AVPixelFormat>(in.format);
  const AVPixFmtDescriptor* desc = lib().av_pix_fmt_desc_get(format);
  int steps[4] = {};
  lib().av_image_fill_max_pixsteps(steps, nullptr, desc);
  for (int p = 0; p < lib().av_pix_fmt_count_planes(format); ++p) {
    const bool chroma = p == 1 || p == 2;
    const int w = chroma ? AV_CEIL_RSHIFT(in.width, desc->log2_chroma_w) : in.width;
    const int h = chroma ? AV_CEIL_RSHIFT(in.height, desc->log2_chroma_h) : in.height;
    orient_plane(in.data[p], in.linesize[p], w, h, steps[p], out->data[p], out->linesize[p], o);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Colour conversion to RGB24, as the `ffmpeg` command's scale filter does it by default.

// The size of a frame once oriented.
struct FrameSize {
  int width;
  int height;
};
FrameSize oriented_size(const AVFrame& frame, const Orientation& o) {
  return o.transpose ? FrameSize{frame.height, frame.width} : FrameSize{frame.width, frame.height};
}

class RgbConverter {
 public:
  explicit RgbConverter(const MappedFile& file) : file_(file) {}

  // `size` is the stream's output size: the `ffmpeg` command opens its output at the first
  // frame's (oriented) size and scales every later frame of another size to it, with the same
  // bicubic libswscale conversion, so frames after a resolution change are scaled here too.
  RgbImage convert(const AVFrame& frame, const Orientation& o, FrameSize size) {
    // Allocated first: its size check refuses an oversized frame before any work on it.
    RgbImage image = allocate_rgb_image(size.width, size.height, file_.path());
    const auto format = static_cast<AVPixelFormat>(frame.format);
    const FrameSize unoriented = o.transpose ? FrameSize{size.height, size.width} : size;
    if (o.identity()) {
      copy_rows(to_rgb(frame, size), image, Orientation{});
    } else if (orients_before_conversion(format, o)) {
      copy_rows(to_rgb(*oriented_copy(file_, frame, o), size), image, Orientation{});
    } else {
      copy_rows(to_rgb(frame, unoriented), image, o);
    }
    return image;
  }

 private:
  // The frame in RGB24 at `size`, in a padded buffer: libswscale's SIMD paths may write past a
  // row's last pixel.
  const AVFrame& to_rgb(const AVFrame& frame, FrameSize size) {
    prepare(frame, size);
    const int height = lib().sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, rgb_->data, rgb_->linesize);
    if (height != size.height) fail(file_, "cannot convert a " + std::to_string(frame.width) + "x" +
                                                std::to_string(frame.height) + " frame to RGB");
    return *rgb_;
  }

  void prepare(const AVFrame& frame, FrameSize size) {
    const Key key{frame.width,  frame.height, size.width, size.height, frame.format, enum_value(frame.colorspace),
                  enum_value(frame.color_range)};
    if (sws_ && key == key_) return;
    key_ = key;
    const auto format = static_cast<AVPixelFormat>(frame.format);
    sws_.reset(lib().sws_getContext(frame.width, frame.height, format, size.width, size.height, AV_PIX_FMT_RGB24,
                              SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws_) {
      const char* name = lib().av_get_pix_fmt_name(format);
      fail(file_, std::string("cannot convert pixel format ") + (name != nullptr ? name : "?") + " to RGB");
    }
    set_colour_details(frame);
    rgb_ = new_frame(file_, AV_PIX_FMT_RGB24, size.width, size.height);
  }

  // The scale filter's default in_color_matrix "auto": the frame's own coefficients (BT.601
  // when unspecified) for both tables, the frame's range when it states one (yuvj formats are
  // full range already), the rest as libswscale set it up.
  void set_colour_details(const AVFrame& frame) {
    int *inv_table = nullptr, *table = nullptr;
    int src_full = 0, dst_full = 0, brightness = 0, contrast = 0, saturation = 0;
    lib().sws_getColorspaceDetails(sws_.get(), &inv_table, &src_full, &table, &dst_full, &brightness, &contrast,
                             &saturation);
    const int* coefficients = lib().sws_getCoefficients(enum_value(frame.colorspace));  // BT.601 for unknown values
    const int range = enum_value(frame.color_range);
    if (range != AVCOL_RANGE_UNSPECIFIED) src_full = range == AVCOL_RANGE_JPEG;
    lib().sws_setColorspaceDetails(sws_.get(), coefficients, src_full, coefficients, dst_full, brightness, contrast,
                             saturation);
  }

  static void copy_rows(const AVFrame& rgb, RgbImage& image, const Orientation& o) {
    orient_plane(rgb.data[0], rgb.linesize[0], rgb.width, rgb.height, 3, image.pixels.data(), image.width * 3, o);
  }

  struct Key {
    int width, height, out_width, out_height, format, colorspace, range;
    bool operator==(const Key&) const = default;
  };

  const MappedFile& file_;
  Key key_{};
  SwsPtr sws_;
  FramePtr rgb_;
};

// ---------------------------------------------------------------------------------------------
// The decoder core that both readers (sampled and sequential) pull frames from.

// The video stream's frames in the order the decoder gives them out, one at a time. That is
// presentation order (the decoder reorders B-frames itself) and the `ffmpeg` command's numbering
// with -vsync passthrough. Each frame's orientation is known as it comes out, and the first
// frame fixes the size every converted frame has.
class FrameReader {
 public:
  // How to decode a packet, asked before it is sent: at this skip level, or not at all, the
  // input ending before it. Without a policy every packet is decoded.
  using PacketPolicy = std::function<std::optional<AVDiscard>(const AVPacket&)>;

  FrameReader(const MappedFile& file, int threads, PacketPolicy policy = {})
      : demuxer_(file), decoder_(file, demuxer_.stream(), threads), policy_(std::move(policy)), converter_(file) {}

  const AVStream& stream() const { return demuxer_.stream(); }

  // The next frame, valid until the next call; nullptr once the decoder has given out all.
  const AVFrame* next() {
    while (true) {
      if (const AVFrame* frame = decoder_.receive()) {
        orientation_ = orientation_of(display_matrix(*frame, stream()));
        if (!output_size_) output_size_ = oriented_size(*frame, orientation_);
        current_ = frame;
        return frame;
      }
      if (decoder_.ended()) return nullptr;
      send_next();
    }
  }

  // The frame next() gave out last: its orientation, and its RGB24 pixels oriented and at the
  // first frame's size.
  const Orientation& orientation() const { return orientation_; }
  RgbImage rgb() { return converter_.convert(*current_, orientation_, *output_size_); }

  int last_error() const { return decoder_.last_error(); }

 private:
  // Sends the next packet the policy lets through (the refused one again, after a refusal), and
  // after the last, the end of the stream.
  void send_next() {
    if (!resend_ && !input_ended_) input_ended_ = !read_packet();
    resend_ = !decoder_.send(input_ended_ ? nullptr : packet_.get(), !resend_);
  }

  bool read_packet() {
    while (demuxer_.next(packet_.get())) {
      if (packet_->size == 0) continue;  // sending it would end the stream
      if (!policy_) return true;
      const std::optional<AVDiscard> skip = policy_(*packet_);
      if (skip) decoder_.set_skip(*skip);
      return skip.has_value();
    }
    return false;
  }

  Demuxer demuxer_;
  Decoder decoder_;
  PacketPolicy policy_;
  RgbConverter converter_;
  PacketPtr packet_ = new_packet();
  bool input_ended_ = false;
  bool resend_ = false;
  const AVFrame* current_ = nullptr;
  Orientation orientation_;
  std::optional<FrameSize> output_size_;
};

// ---------------------------------------------------------------------------------------------
// The decoding passes.

// What one pass wants and found.
struct PassResult {
  bool complete = false;            // every wanted frame came out, in order
  bool decoded_everything = false;  // nothing was skipped and the stream was read to its end
  int64_t frames_out = 0;           // frames the decoder gave out
  int64_t first_missing = -1;       // the first wanted frame that did not come out
  int last_error = 0;               // FFmpeg's last decoding error
};

class SampledDecode {
 public:
  SampledDecode(const MappedFile& file, const VideoDecodeOptions& options, SampledFrames& out)
      : file_(file), options_(options), out_(out) {}

  // Decodes the stream from its start up to the last wanted frame, converting the wanted ones
  // into out_.images. With `index`, frames are known by their pts and the frames not wanted are
  // skipped where the codec allows; without it, frames are numbered as they come out.
  PassResult run(const std::vector<int64_t>& wanted, const PacketIndex* index) {
    Pass pass{wanted, index};
    FrameReader reader(file_, options_.threads, index != nullptr ? skipping(pass) : FrameReader::PacketPolicy{});
    bool stopped = false;
    while (!stopped) {
      const AVFrame* frame = reader.next();
      if (frame == nullptr) break;
      stopped = !take_frame(pass, reader, *frame);
    }
    // A frame that did not come out was taken as one the decoder skipped as not wanted; with a
    // decoding error on the way, it may instead have failed, and the numbering is in doubt.
    if (pass.passed_over > 0 && reader.last_error() < 0) pass.failed = true;
    PassResult result;
    result.complete = !pass.failed && pass.next_wanted == wanted.size();
    if (!result.complete) result.first_missing = wanted[std::min(pass.next_wanted, wanted.size() - 1)];
    result.decoded_everything = !stopped && index == nullptr;
    result.frames_out = pass.frames_out;
    result.last_error = reader.last_error();
    return result;
  }

 private:
  struct Pass {
    const std::vector<int64_t>& wanted;  // sorted, distinct
    const PacketIndex* index;
    std::size_t next_wanted = 0;
    int64_t last_frame = -1;
    int64_t frames_out = 0;
    int64_t passed_over = 0;  // frames that did not come out
    bool failed = false;      // the frames did not match the index
  };

  // With the index: the packets up to the last one holding a wanted frame, after which the
  // decoder only has to give out what it holds, each at the skip level skip_for gives it.
  static FrameReader::PacketPolicy skipping(const Pass& pass) {
    const int64_t last_packet = last_packet_needed(*pass.index, pass.wanted.back());
    int64_t counted = 0;  // packets that make a frame, in decode order
    return [&pass, last_packet, counted](const AVPacket& packet) mutable -> std::optional<AVDiscard> {
      if (counted > last_packet) return std::nullopt;
      const bool frame_packet = makes_frame(packet);
      const AVDiscard skip = skip_for(pass, packet, frame_packet, counted);
      counted += frame_packet ? 1 : 0;
      return skip;
    };
  }

  // The last packet (in decode order, among those making a frame) holding a frame at or before
  // `last_frame`.
  static int64_t last_packet_needed(const PacketIndex& index, int64_t last_frame) {
    int64_t last = -1;
    for (std::size_t i = 0; i < index.pts_in_decode_order.size(); ++i) {
      if (index.frame_of(index.pts_in_decode_order[i]) <= last_frame) last = static_cast<int64_t>(i);
    }
    return last;
  }

  static AVDiscard skip_for(const Pass& pass, const AVPacket& packet, bool frame_packet, int64_t counted) {
    if (!frame_packet) return AVDISCARD_NONREF;
    const auto& order = pass.index->pts_in_decode_order;
    if (counted >= static_cast<int64_t>(order.size()) || order[counted] != packet.pts) {
      return AVDISCARD_DEFAULT;  // not the packets the index saw; the frame check will tell
    }
    const int64_t frame = pass.index->frame_of(packet.pts);
    return std::binary_search(pass.wanted.begin(), pass.wanted.end(), frame) ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
  }

  // Returns false once every wanted frame is in, or the frames stop matching the index.
  bool take_frame(Pass& pass, FrameReader& reader, const AVFrame& frame) {
    ++pass.frames_out;
    const int64_t number = pass.index == nullptr ? pass.frames_out - 1 : frame_number(pass, frame);
    if (number <= pass.last_frame) {
      pass.failed = true;  // out of order or unknown: the index does not describe this stream
      return false;
    }
    // Frames skipped by the decoder are frames not wanted; a wanted one passed over means the
    // numbering is off.
    if (pass.wanted[pass.next_wanted] < number) {
      pass.failed = true;
      return false;
    }
    pass.passed_over += number - pass.last_frame - 1;
    pass.last_frame = number;
    if (pass.wanted[pass.next_wanted] == number) {
      if (pass.next_wanted == 0) out_.rotation_degrees = reader.orientation().clockwise_degrees;
      out_.images[number] = reader.rgb();
      ++pass.next_wanted;
    }
    return pass.next_wanted < pass.wanted.size();
  }

  static int64_t frame_number(const Pass& pass, const AVFrame& frame) {
    return frame.pts == AV_NOPTS_VALUE ? -1 : pass.index->frame_of(frame.pts);
  }

  const MappedFile& file_;
  const VideoDecodeOptions& options_;
  SampledFrames& out_;
};

// The number of frames the decoder gives out for the whole stream, decoding every one.
PassResult count_decoded_frames(const MappedFile& file, const VideoDecodeOptions& options) {
  FrameReader reader(file, options.threads);
  PassResult result;
  while (reader.next() != nullptr) ++result.frames_out;
  result.decoded_everything = true;
  result.last_error = reader.last_error();
  return result;
}

// The sampler's indices, checked, and the distinct ones sorted.
std::vector<int64_t> sample_frames(const FrameSampler& sample, int64_t frame_count, SampledFrames& out) {
  out.frame_count = frame_count;
  out.indices = sample(frame_count);
  if (out.indices.empty()) throw std::logic_error("the frame sampler returned no frame");
  for (int64_t i : out.indices) {
    if (i < 0 || i >= frame_count) {
      throw std::logic_error("the frame sampler returned frame " + std::to_string(i) + " of " +
                             std::to_string(frame_count));
    }
  }
  std::vector<int64_t> wanted = out.indices;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  return wanted;
}

std::string with_reason(const std::string& cause, int error) {
  return error < 0 ? cause + " (" + ffmpeg::reason(error) + ")" : cause;
}

// ---------------------------------------------------------------------------------------------
// The sequential source.

constexpr double kUnknownFrameRate = 25;

double nominal_fps(const AVStream& stream) {
  for (const AVRational rate : {stream.avg_frame_rate, stream.r_frame_rate}) {
    if (rate.num > 0 && rate.den > 0) return av_q2d(rate);
  }
  return kUnknownFrameRate;
}

// Frame times from the frames' timestamps, counted from the first frame's. A frame without one
// (or every frame, in a stream without a usable time base) comes 1 / fps after the frame before;
// the first timestamp after such frames counts from that frame's time.
class StreamClock {
 public:
  StreamClock(AVRational time_base, double fps) : time_base_(time_base), fps_(fps) {}

  double time_of(int64_t timestamp) {
    const double following = started_ ? last_ + 1 / fps_ : 0;
    started_ = true;
    if (timestamp == AV_NOPTS_VALUE || time_base_.num <= 0 || time_base_.den <= 0) return last_ = following;
    if (!origin_) origin_ = Origin{timestamp, following};
    // In doubles: exact for timestamps below 2^53, and crafted ones cannot overflow.
    const double ticks = static_cast<double>(timestamp) - static_cast<double>(origin_->timestamp);
    return last_ = origin_->time + ticks * time_base_.num / time_base_.den;
  }

 private:
  struct Origin {
    int64_t timestamp;
    double time;
  };
  AVRational time_base_;
  double fps_;
  bool started_ = false;
  double last_ = 0;
  std::optional<Origin> origin_;
};

class VideoSource final : public FrameSource {
 public:
  VideoSource(std::shared_ptr<const MappedFile> file, int threads)
      : file_(std::move(file)),
        reader_(*file_, threads),
        fps_(nominal_fps(reader_.stream())),
        clock_(reader_.stream().time_base, fps_) {}

  std::optional<StreamFrame> next() override {
    const AVFrame* frame = reader_.next();
    if (frame == nullptr && index_ == 0) fail(*file_, with_reason("no decodable video frame", reader_.last_error()));
    if (frame == nullptr) return std::nullopt;
    RgbImage image = reader_.rgb();
    const double time_s = clock_.time_of(frame->best_effort_timestamp);
    return StreamFrame{index_++, time_s, std::move(image)};
  }

  double fps() const override { return fps_; }
  const std::string& name() const override { return file_->path(); }

 private:
  std::shared_ptr<const MappedFile> file_;  // first: the reader reads its bytes
  FrameReader reader_;
  double fps_;
  StreamClock clock_;
  int64_t index_ = 0;
};

}  // namespace

SampledFrames decode_video(const std::shared_ptr<const MappedFile>& file, const FrameSampler& sample,
                           const VideoDecodeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ffmpeg::load_quietly(file->path());
  const PacketIndex index = index_packets(*file);
  if (index.frame_count == 0) fail(*file, "no decodable video frame");

  SampledFrames out;
  SampledDecode decode(*file, options, out);
  std::vector<int64_t> wanted = sample_frames(sample, index.frame_count, out);
  PassResult pass = decode.run(wanted, index.identifies_frames() ? &index : nullptr);
  if (!pass.complete) {
    // The packets did not tell the frames right: count what the decoder gives out, sample that.
    out.images.clear();
    out.rotation_degrees = 0;
    const PassResult counted = pass.decoded_everything ? pass : count_decoded_frames(*file, options);
    if (counted.frames_out == 0) fail(*file, with_reason("no decodable video frame", counted.last_error));
    wanted = sample_frames(sample, counted.frames_out, out);
    pass = decode.run(wanted, nullptr);
    if (!pass.complete) {
      fail(*file, with_reason("frame " + std::to_string(pass.first_missing) + " did not decode", pass.last_error));
    }
  }
  out.decode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::unique_ptr<FrameSource> open_video_source(std::shared_ptr<const MappedFile> file, int decoder_threads) {
  ffmpeg::load_quietly(file->path());
  return std::make_unique<VideoSource>(std::move(file), decoder_threads);
}

std::unique_ptr<FrameSource> open_video_source(const std::string& path, int decoder_threads) {
  return open_video_source(MappedFile::open(path), decoder_threads);
}

}  // namespace ecocpu::video
