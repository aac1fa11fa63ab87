#include <trainscope/error.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace trainscope::track {
namespace fs = std::filesystem;

namespace {

constexpr std::array<char, 7> kMagic = {'T', 'S', 'C', 'K', 'P', 'T', '\0'};
constexpr size_t kPrefixBytes = 16;  // magic + version, header length, header CRC

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// JSON has no NaN: an absent value reads back as NaN.
nlohmann::json to_json(const CheckpointInfo& i) {
  nlohmann::json j = {{"kind", i.kind},
                      {"epoch", i.epoch},
                      {"step", i.step},
                      {"batches", i.batches},
                      {"epoch_complete", i.epoch_complete},
                      {"monitor", i.monitor},
                      {"wall_time", i.wall_time},
                      {"metrics_mark", i.metrics_mark},
                      {"findings_mark", i.findings_mark},
                      {"trainscope_version", i.trainscope_version},
                      {"torch_version", i.torch_version},
                      {"payload_bytes", i.payload_bytes},
                      {"payload_crc", i.payload_crc}};
  if (std::isfinite(i.value)) j["value"] = i.value;
  return j;
}

CheckpointInfo from_json(const nlohmann::json& j, int version) {
  CheckpointInfo i;
  i.format_version = version;
  i.kind = j.at("kind").get<std::string>();
  i.epoch = j.at("epoch").get<int64_t>();
  i.step = j.at("step").get<int64_t>();
  i.batches = j.at("batches").get<int64_t>();
  i.epoch_complete = j.at("epoch_complete").get<bool>();
  i.monitor = j.value("monitor", "");
  if (j.contains("value")) i.value = j.at("value").get<double>();
  i.wall_time = j.value("wall_time", 0.0);
  i.metrics_mark = j.value("metrics_mark", int64_t{0});
  i.findings_mark = j.value("findings_mark", int64_t{0});
  i.trainscope_version = j.value("trainscope_version", "");
  i.torch_version = j.value("torch_version", "");
  i.payload_bytes = j.at("payload_bytes").get<uint64_t>();
  i.payload_crc = j.at("payload_crc").get<uint32_t>();
  return i;
}

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close(2) reports deferred write errors (NFS, some quotas): they count as write errors.
  int release_and_close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

void write_all(int fd, const char* data, size_t size, const fs::path& file, uint64_t total,
               uint64_t& written) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError("cannot write checkpoint " + file.string() + ": " +
                            std::strerror(errno) + " after " + megabytes(written) + " of " +
                            megabytes(total));
    }
    data += n;
    size -= static_cast<size_t>(n);
    written += static_cast<uint64_t>(n);
  }
}

std::string read_prefix(const fs::path& file, std::FILE* in, uint32_t& header_len, int& version) {
  std::array<char, kPrefixBytes> prefix{};
  const size_t got = std::fread(prefix.data(), 1, prefix.size(), in);
  if (got < prefix.size() &&
      !std::equal(kMagic.begin(), kMagic.begin() + std::min(got, kMagic.size()), prefix.begin()))
    throw CheckpointDamaged(file.string() +
                            " is not a trainscope checkpoint (it does not start with "
                            "the TSCKPT magic)");
  if (got < prefix.size())
    throw CheckpointDamaged("checkpoint " + file.string() + " is truncated: " +
                            std::to_string(got) + " bytes, less than its 16-byte prefix");
  if (!std::equal(kMagic.begin(), kMagic.end(), prefix.begin()))
    throw CheckpointDamaged(file.string() +
                            " is not a trainscope checkpoint (it does not start with the TSCKPT "
                            "magic)");
  version = static_cast<unsigned char>(prefix[7]);
  if (version < 1 || version > kCheckpointFormatVersion)
    throw CheckpointError("checkpoint " + file.string() + " has format version " +
                          std::to_string(version) + "; this trainscope reads version " +
                          std::to_string(kCheckpointFormatVersion) +
                          " (open it with the trainscope that wrote it)");
  header_len = get_u32(prefix.data() + 8);
  const uint32_t header_crc = get_u32(prefix.data() + 12);
  if (header_len > (1u << 20))
    throw CheckpointDamaged("checkpoint " + file.string() + " is corrupt: its header length " +
                            std::to_string(header_len) + " is implausible");
  std::string header(header_len, '\0');
  if (std::fread(header.data(), 1, header_len, in) != header_len)
    throw CheckpointDamaged("checkpoint " + file.string() + " is truncated inside its header");
  if (crc32(header.data(), header.size()) != header_crc)
    throw CheckpointDamaged("checkpoint " + file.string() +
                            " is corrupt: its header fails the checksum");
  return header;
}

CheckpointInfo parse_header(const fs::path& file, const std::string& header, int version) {
  try {
    return from_json(nlohmann::json::parse(header), version);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointDamaged("checkpoint " + file.string() +
                            " has an unreadable header: " + e.what());
  }
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_for_reading(const fs::path& file) {
  File in(std::fopen(file.c_str(), "rb"));
  if (!in)
    throw CheckpointError("cannot open checkpoint " + file.string() + ": " + std::strerror(errno));
  return in;
}

}  // namespace

uint32_t crc32(const void* data, size_t size) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  // zlib takes a uInt length: feed large buffers in 1 GiB pieces.
  while (size > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(size, size_t{1} << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
}

void write_checkpoint_file(const fs::path& file, CheckpointInfo info, const std::string& payload,
                           const std::function<void()>& before_replace) {
  info.format_version = kCheckpointFormatVersion;
  info.payload_bytes = payload.size();
  info.payload_crc = crc32(payload.data(), payload.size());
  const std::string header = to_json(info).dump();
  std::string prefix(kMagic.begin(), kMagic.end());
  prefix += static_cast<char>(kCheckpointFormatVersion);
  put_u32(prefix, static_cast<uint32_t>(header.size()));
  put_u32(prefix, crc32(header.data(), header.size()));
  const uint64_t total = prefix.size() + header.size() + payload.size();
  try {
    write_atomically(file, [&](const fs::path& tmp) {
      Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (fd.get() < 0)
        throw CheckpointError("cannot create checkpoint " + tmp.string() + ": " +
                              std::strerror(errno));
      uint64_t written = 0;
      write_all(fd.get(), prefix.data(), prefix.size(), file, total, written);
      write_all(fd.get(), header.data(), header.size(), file, total, written);
      write_all(fd.get(), payload.data(), payload.size(), file, total, written);
      if (::fsync(fd.get()) != 0 || fd.release_and_close() != 0)
        throw CheckpointError("cannot write checkpoint " + file.string() + ": " +
                              std::strerror(errno) + " while flushing " + megabytes(total) +
                              " to disk");
      if (before_replace) before_replace();
    });
  } catch (const CheckpointError& e) {
    throw CheckpointError(std::string(e.what()) +
                          " (the previous checkpoint, if any, is intact; free disk space or make "
                          "the run directory writable)");
  } catch (const Error& e) {
    throw CheckpointError(std::string(e.what()) + " (the previous checkpoint, if any, is intact)");
  }
}

CheckpointInfo read_checkpoint_info(const fs::path& file) {
  File in = open_for_reading(file);
  uint32_t header_len = 0;
  int version = 0;
  const std::string header = read_prefix(file, in.get(), header_len, version);
  return parse_header(file, header, version);
}

std::string read_checkpoint_payload(const fs::path& file, CheckpointInfo* out_info) {
  File in = open_for_reading(file);
  uint32_t header_len = 0;
  int version = 0;
  const std::string header = read_prefix(file, in.get(), header_len, version);
  CheckpointInfo info = parse_header(file, header, version);
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  const uint64_t have = ec ? 0 : size - kPrefixBytes - header_len;
  if (have < info.payload_bytes)
    throw CheckpointDamaged("checkpoint " + file.string() + " is truncated: it holds " +
                            megabytes(have) + " of its " + megabytes(info.payload_bytes) +
                            " payload (a save was cut short)");
  if (have > info.payload_bytes)
    throw CheckpointDamaged("checkpoint " + file.string() +
                            " is corrupt: " + std::to_string(have - info.payload_bytes) +
                            " bytes follow its payload");
  std::string payload(info.payload_bytes, '\0');
  if (std::fread(payload.data(), 1, payload.size(), in.get()) != payload.size())
    throw CheckpointError("cannot read checkpoint " + file.string() + ": " + std::strerror(errno));
  const uint32_t crc = crc32(payload.data(), payload.size());
  if (crc != info.payload_crc) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "CRC-32 %08x, expected %08x", crc, info.payload_crc);
    throw CheckpointDamaged("checkpoint " + file.string() +
                            " is corrupt: its payload fails the "
                            "checksum (" +
                            std::string(buf) + ")");
  }
  if (out_info) *out_info = info;
  return payload;
}

bool is_checkpoint_file(const fs::path& file) {
  std::FILE* in = std::fopen(file.c_str(), "rb");
  if (!in) return false;
  std::array<char, kMagic.size()> head{};
  const bool ok = std::fread(head.data(), 1, head.size(), in) == head.size() &&
                  std::equal(kMagic.begin(), kMagic.end(), head.begin());
  std::fclose(in);
  return ok;
}

}  // namespace trainscope::track
