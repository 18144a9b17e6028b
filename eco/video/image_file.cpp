#include "eco/video/image_file.hpp"

#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "eco/video/ffmpeg_objects.hpp"

namespace ecocpu::video {

namespace {

using ffmpeg::lib;

[[noreturn]] void fail(const MappedFile& file, const std::string& cause) {
  throw FileError(file.path() + ": " + cause);
}

bool starts_with(const MappedFile& file, const uint8_t* magic, std::size_t size) {
  return file.size() >= size && std::memcmp(file.data(), magic, size) == 0;
}

bool is_jpeg(const MappedFile& file) {
  static const uint8_t magic[] = {0xFF, 0xD8, 0xFF};
  return starts_with(file, magic, sizeof magic);
}

bool is_png(const MappedFile& file) {
  static const uint8_t magic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return starts_with(file, magic, sizeof magic);
}

// ---- JPEG -------------------------------------------------------------------------------------

struct TjDestroy {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjDecompressor = std::unique_ptr<void, TjDestroy>;

// TurboJPEG decodes with the accurate integer IDCT (JDCT_ISLOW) and smooth ("fancy") upsampling
// by default, which is what PIL's decoder leaves libjpeg at unless draft() is called; ACCURATEDCT
// states it rather than relying on the default. A warning is an error: PIL refuses truncated
// files too, and a frame with grey blocks would be classified silently. LIMITSCANS refuses
// progressive files with hundreds of scans, which take quadratic time for no image a camera or
// encoder writes.
constexpr int kJpegFlags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;

// TurboJPEG prefixes its own checks with the function name ("tjDecompressHeader3(): ..."); the
// caller does not care which function it was.
std::string turbojpeg_error(void* handle) {
  std::string message = tjGetErrorStr2(handle);
  const std::size_t prefix = message.find("(): ");
  if (message.rfind("tj", 0) == 0 && prefix != std::string::npos) message.erase(0, prefix + 4);
  return message;
}

RgbImage decode_jpeg(const MappedFile& file) {
  TjDecompressor tj(tjInitDecompress());
  if (!tj) fail(file, "cannot start the JPEG decoder: " + turbojpeg_error(nullptr));
  // A file that ends before the frame header is only a warning to tjDecompressHeader3, which then
  // succeeds without setting the size.
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), file.data(), file.size(), &width, &height, &subsampling, &colorspace) != 0 ||
      width <= 0 || height <= 0) {
    fail(file, turbojpeg_error(tj.get()));
  }
  // PIL decodes these as mode CMYK (inverting Adobe's) and converts to RGB with its own naive
  // formula, which libjpeg does not implement; no video frame extractor writes them.
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) fail(file, "CMYK JPEGs are not supported");
  RgbImage image = allocate_rgb_image(width, height, file.path());
  if (tjDecompress2(tj.get(), file.data(), file.size(), image.pixels.data(), width, 0, height, TJPF_RGB,
                    kJpegFlags) != 0) {
    fail(file, turbojpeg_error(tj.get()));
  }
  return image;
}

// ---- PNG --------------------------------------------------------------------------------------

using ffmpeg::CodecContextPtr;
using ffmpeg::FramePtr;
using ffmpeg::PacketPtr;
using ffmpeg::SwsPtr;

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The size in the IHDR chunk, which a PNG must start with: checked (and the output allocated)
// before the decoder allocates anything for a crafted 2^31 x 2^31 header.
RgbImage allocate_for_png_header(const MappedFile& file) {
  const uint8_t* p = file.data();
  if (file.size() < 8 + 8 + 13 || big_endian_u32(p + 8) != 13 || std::memcmp(p + 12, "IHDR", 4) != 0) {
    fail(file, "not a valid PNG: it does not start with an IHDR chunk");
  }
  return allocate_rgb_image(big_endian_u32(p + 16), big_endian_u32(p + 20), file.path());
}

CodecContextPtr open_png_decoder(const MappedFile& file) {
  const AVCodec* codec = lib().avcodec_find_decoder(AV_CODEC_ID_PNG);
  if (!codec) fail(file, "this FFmpeg has no PNG decoder");
  CodecContextPtr context(lib().avcodec_alloc_context3(codec));
  if (!context) throw std::bad_alloc();
  context->max_pixels = kMaxFramePixels;
  context->thread_count = 1;  // the frames of a folder are decoded in parallel
  // A damaged file is an error, not a partial or garbled frame, as for JPEG.
  context->err_recognition = AV_EF_EXPLODE | AV_EF_CRCCHECK;
  const int status = lib().avcodec_open2(context.get(), codec, nullptr);
  if (status < 0) fail(file, "cannot open the PNG decoder: " + ffmpeg::reason(status));
  return context;
}

bool is_ascii_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// The size of the chunk at `at` (length, type, data, CRC), checked to lie inside the file.
std::size_t png_chunk_size(const MappedFile& file, std::size_t at) {
  if (file.size() - at < 12) fail(file, "truncated PNG: a chunk header runs past the end of the file");
  const uint8_t* type = file.data() + at + 4;
  if (!std::all_of(type, type + 4, is_ascii_letter)) fail(file, "not a valid PNG: a chunk type is not 4 letters");
  const std::size_t size = std::size_t{12} + big_endian_u32(file.data() + at);
  if (size > file.size() - at) {
    fail(file, "truncated PNG: the " + std::string(type, type + 4) + " chunk runs past the end of the file");
  }
  return size;
}

// One packet holding the signature and the critical chunks (IHDR, PLTE, IDAT, IEND: those whose
// type starts with a capital letter), in order. FFmpeg inflates compressed text and ICC profile
// chunks into memory without a bound (a 600 kB zTXt chunk takes 1.2 GB), and no ancillary chunk
// changes the RGB pixels: tRNS only adds the alpha that is dropped, and neither PIL nor FFmpeg
// applies gamma or colour-space chunks. The decoder reads up to AV_INPUT_BUFFER_PADDING_SIZE bytes
// past the end, which av_new_packet and av_shrink_packet zero.
PacketPtr png_packet(const MappedFile& file) {
  if (file.size() > static_cast<std::size_t>(INT_MAX - AV_INPUT_BUFFER_PADDING_SIZE)) {
    fail(file, "the PNG file is larger than 2 GiB");
  }
  PacketPtr packet(lib().av_packet_alloc());
  if (!packet || lib().av_new_packet(packet.get(), static_cast<int>(file.size())) < 0) throw std::bad_alloc();
  std::size_t kept = 8;
  std::memcpy(packet->data, file.data(), kept);
  for (std::size_t at = 8; at < file.size();) {
    const std::size_t size = png_chunk_size(file, at);
    const uint8_t* type = file.data() + at + 4;
    if ((type[0] & 0x20) == 0) {
      std::memcpy(packet->data + kept, file.data() + at, size);
      kept += size;
    }
    at += size;
    if (std::memcmp(type, "IEND", 4) == 0) break;
  }
  lib().av_shrink_packet(packet.get(), static_cast<int>(kept));
  return packet;
}

FramePtr decode_png_frame(const MappedFile& file) {
  CodecContextPtr context = open_png_decoder(file);
  PacketPtr packet = png_packet(file);
  FramePtr frame(lib().av_frame_alloc());
  if (!frame) throw std::bad_alloc();
  int status = lib().avcodec_send_packet(context.get(), packet.get());
  if (status >= 0) status = lib().avcodec_receive_frame(context.get(), frame.get());
  if (status == AVERROR(EAGAIN)) {  // a decoder that holds the frame back until it is flushed
    status = lib().avcodec_send_packet(context.get(), nullptr);
    if (status >= 0) status = lib().avcodec_receive_frame(context.get(), frame.get());
  }
  if (status == AVERROR(ENOMEM)) throw std::bad_alloc();
  if (status < 0) fail(file, "corrupt or truncated PNG data (" + ffmpeg::reason(status) + ")");
  if (frame->decode_error_flags != 0 || (frame->flags & AV_FRAME_FLAG_CORRUPT) != 0) {
    fail(file, "the PNG data is corrupt");
  }
  return frame;
}

// libswscale's unscaled conversions: RGB copied, alpha dropped (as PIL's convert("RGB") drops
// it), gray replicated into R, G and B (full range), palettes looked up, 16-bit samples reduced
// to 8 bits.
void convert_to_rgb(const MappedFile& file, const AVFrame& frame, RgbImage& image) {
  const auto format = static_cast<AVPixelFormat>(frame.format);
  SwsPtr sws(lib().sws_getContext(frame.width, frame.height, format, frame.width, frame.height, AV_PIX_FMT_RGB24,
                            SWS_POINT, nullptr, nullptr, nullptr));
  if (!sws) {
    const char* name = lib().av_get_pix_fmt_name(format);
    fail(file, std::string("cannot convert the PNG's pixel format (") + (name ? name : "unknown") + ") to RGB");
  }
  uint8_t* destination[4] = {image.pixels.data(), nullptr, nullptr, nullptr};
  const int destination_stride[4] = {static_cast<int>(image.width * 3), 0, 0, 0};
  lib().sws_scale(sws.get(), frame.data, frame.linesize, 0, frame.height, destination, destination_stride);
}

RgbImage decode_png(const MappedFile& file) {
  ffmpeg::load_quietly(file.path());
  RgbImage image = allocate_for_png_header(file);
  FramePtr frame = decode_png_frame(file);
  if (frame->width != image.width || frame->height != image.height) {
    fail(file, "the decoded PNG is " + std::to_string(frame->width) + "x" + std::to_string(frame->height) +
                   ", not the IHDR's " + std::to_string(image.width) + "x" + std::to_string(image.height));
  }
  convert_to_rgb(file, *frame, image);
  return image;
}

}  // namespace

RgbImage decode_image(const MappedFile& file) {
  if (is_jpeg(file)) return decode_jpeg(file);
  if (is_png(file)) return decode_png(file);
  fail(file, "not a JPEG or PNG image");
}

}  // namespace ecocpu::video
