#include "server/feedback_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace recsys::server {

namespace {

constexpr char kCurrentName[] = "feedback.jsonl";
constexpr char kRotatedPrefix[] = "feedback-";
constexpr char kSuffix[] = ".jsonl";
// Served records gathered beyond this wake the writer before the flush interval ends.
constexpr size_t kServedFlushBytes = 1 << 20;

std::string Errno(absl::string_view what, const std::string& path) {
  return absl::StrCat("feedback log ", path, ": ", what, ": ", std::strerror(errno));
}

// RFC 3339, UTC, milliseconds: "2026-11-30T15:04:05.123Z".
std::string LogTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

// `s` as a JSON string. The strings are UTF-8 (protobuf checks that proto3 strings are); only
// the characters JSON requires are escaped.
void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// The dedup key of an event; ids are length-prefixed, so no id can fake another key.
std::string Key(absl::string_view request_id, absl::string_view item_id, absl::string_view event) {
  return absl::StrCat(request_id.size(), ":", request_id, item_id.size(), ":", item_id, event);
}

void AppendFeedbackLine(std::string* out, const std::string& request_id, const FeedbackEntry& entry,
                        absl::Time received) {
  out->append("{\"type\":\"feedback\",\"request_id\":");
  AppendJsonString(out, request_id);
  out->append(",\"item_id\":");
  AppendJsonString(out, entry.item_id);
  absl::StrAppend(out, ",\"event\":\"", FeedbackEventName(entry.event), "\",\"time\":\"",
                  LogTime(*entry.time), "\",\"received\":\"", LogTime(received), "\"}\n");
}

void AppendServedLine(std::string* out, const ServedRecord& r) {
  out->append("{\"type\":\"served\",\"request_id\":");
  AppendJsonString(out, r.request_id);
  absl::StrAppend(out, ",\"time\":\"", LogTime(r.time), "\",\"bundle_version\":");
  AppendJsonString(out, r.bundle_version);
  out->append(",\"method\":");
  AppendJsonString(out, r.method);
  out->append(",\"items\":[");
  for (size_t i = 0; i < r.items.size(); ++i) {
    const ServedItem& item = r.items[i];
    out->append(i == 0 ? "{\"item_id\":" : ",{\"item_id\":");
    AppendJsonString(out, item.item_id);
    absl::StrAppend(out, ",\"rank\":", item.rank, ",\"reason\":");
    AppendJsonString(out, item.reason);
    out->append(",\"reason_kind\":");
    AppendJsonString(out, item.reason_kind);
    absl::StrAppend(
        out, ",\"reason_share\":", std::isfinite(item.reason_share) ? item.reason_share : 0.0, "}");
  }
  out->append("]}\n");
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(Errno("open directory", dir));
  const bool ok = fsync(fd) == 0;
  const absl::Status status = ok ? absl::OkStatus() : absl::UnavailableError(Errno("fsync", dir));
  close(fd);
  return status;
}

// The sequence number of a rotated file name, or 0 when `name` is not one.
int64_t RotatedSeq(const std::string& name) {
  if (!absl::StartsWith(name, kRotatedPrefix) || !absl::EndsWith(name, kSuffix)) return 0;
  const std::string stem = name.substr(0, name.size() - std::strlen(kSuffix));
  int64_t seq = 0;
  const size_t dash = stem.rfind('-');
  if (dash == std::string::npos || !absl::SimpleAtoi(stem.substr(dash + 1), &seq)) return 0;
  return seq;
}

}  // namespace

FeedbackLog::FeedbackLog(const FeedbackLogOptions& options) : options_(options) {}

FeedbackLog::~FeedbackLog() { Close(); }

absl::StatusOr<std::unique_ptr<FeedbackLog>> FeedbackLog::Open(const FeedbackLogOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("feedback log dir: required");
  if (options.max_file_bytes <= 0) {
    return absl::InvalidArgumentError("feedback log max_file_bytes: must be > 0");
  }
  if (options.dedup_rotated_files < 0) {
    return absl::InvalidArgumentError("feedback log dedup_rotated_files: must be >= 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("feedback log ", options.dir,
                                               ": cannot create the directory: ", ec.message()));
  }
  std::unique_ptr<FeedbackLog> log(new FeedbackLog(options));
  if (absl::Status s = log->Recover(); !s.ok()) return s;
  if (absl::Status s = log->LoadIndex(); !s.ok()) return s;
  if (absl::Status s = log->OpenCurrent(); !s.ok()) return s;
  FeedbackLog* raw = log.get();
  log->writer_ = std::thread([raw] { raw->Run(); });
  return log;
}

absl::Status FeedbackLog::Recover() {
  const std::string path = options_.dir + "/" + kCurrentName;
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? absl::OkStatus() : absl::UnavailableError(Errno("open", path));
  }
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) status = absl::UnavailableError(Errno("stat", path));
  // The end of the last complete line: search backwards for a newline.
  off_t end = status.ok() ? st.st_size : 0;
  char buffer[4096];
  while (status.ok() && end > 0) {
    const off_t from = std::max<off_t>(0, end - static_cast<off_t>(sizeof(buffer)));
    const ssize_t n = pread(fd, buffer, end - from, from);
    if (n != end - from) {
      status = absl::UnavailableError(Errno("read", path));
      break;
    }
    const char* newline = static_cast<const char*>(memrchr(buffer, '\n', n));
    if (newline != nullptr) {
      end = from + (newline - buffer) + 1;
      break;
    }
    end = from;
  }
  if (status.ok() && end != st.st_size) {
    std::cerr << "recsys_server: feedback log " << path << ": dropped a partial last line ("
              << st.st_size - end << " bytes, never acknowledged)\n";
    if (ftruncate(fd, end) != 0) status = absl::UnavailableError(Errno("truncate", path));
  }
  // What the index is rebuilt from counts as stored: make sure it is on disk, even when the
  // process that wrote it died between its write and its fdatasync.
  if (status.ok() && fdatasync(fd) != 0) status = absl::UnavailableError(Errno("fdatasync", path));
  close(fd);
  return status;
}

absl::Status FeedbackLog::LoadIndex() {
  std::vector<std::string> rotated;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
    const std::string name = entry.path().filename().string();
    const int64_t seq = RotatedSeq(name);
    if (seq == 0) continue;
    rotated.push_back(name);
    next_seq_ = std::max(next_seq_, seq + 1);
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("feedback log ", options_.dir, ": cannot list: ", ec.message()));
  }
  // Oldest first by sequence number, which only grows (the time in the name comes from a clock
  // that may step back).
  std::sort(rotated.begin(), rotated.end(), [](const std::string& a, const std::string& b) {
    return RotatedSeq(a) < RotatedSeq(b);
  });
  const size_t keep = std::min(rotated.size(), static_cast<size_t>(options_.dedup_rotated_files));
  std::vector<std::string> files(rotated.end() - keep, rotated.end());
  files.push_back(kCurrentName);
  int unreadable = 0;
  for (const std::string& name : files) {
    window_.emplace_back();
    std::ifstream in(options_.dir + "/" + name);
    std::string line;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) {
        ++unreadable;
        continue;
      }
      const auto type = j.find("type"), request = j.find("request_id"), item = j.find("item_id"),
                 event = j.find("event");
      if (type == j.end() || *type != "feedback") continue;
      if (request == j.end() || item == j.end() || event == j.end() || !request->is_string() ||
          !item->is_string() || !event->is_string()) {
        ++unreadable;
        continue;
      }
      AddKey(Key(request->get_ref<const std::string&>(), item->get_ref<const std::string&>(),
                 event->get_ref<const std::string&>()));
    }
  }
  if (unreadable > 0) {
    std::cerr << "recsys_server: feedback log " << options_.dir << ": skipped " << unreadable
              << " lines that are not feedback records\n";
  }
  return absl::OkStatus();
}

absl::Status FeedbackLog::OpenCurrent() {
  const std::string path = options_.dir + "/" + kCurrentName;
  fd_ = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return absl::UnavailableError(Errno("open", path));
  struct stat st;
  if (fstat(fd_, &st) != 0) return absl::UnavailableError(Errno("stat", path));
  file_bytes_ = st.st_size;
  return SyncDir(options_.dir);  // The file's name is durable before anything is acknowledged.
}

void FeedbackLog::AddKey(std::string key) {
  if (index_.contains(key)) return;
  FileKeys& keys = window_.back();
  keys.push_back(std::move(key));
  index_.insert(keys.back());
}

void FeedbackLog::Append(FeedbackRequest request, Done done) {
  const absl::Time received = Now();
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      pending_.push_back({std::move(request), received, std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("feedback log closed: the server is shutting down"));
}

void FeedbackLog::AppendServed(const ServedRecord& record) {
  std::string line;
  AppendServedLine(&line, record);
  absl::MutexLock lock(&mu_);
  if (!closing_) served_.append(line);
}

void FeedbackLog::Close() {
  absl::MutexLock close_lock(&close_mu_);
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  if (!writer_.joinable()) {  // Open failed, or closed already: leave the files as they are.
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return;
  }
  writer_.join();
  if (fd_ < 0) return;
  // Everything written ends up in a complete rotated file, which the collector ships whole.
  absl::Status status = file_bytes_ > 0 && !broken_ ? RenameCurrent() : absl::OkStatus();
  if (status.ok() && fd_ < 0) status = SyncDir(options_.dir);
  if (fd_ >= 0) {
    if (fdatasync(fd_) != 0 && status.ok()) {
      status = absl::UnavailableError(Errno("fdatasync", options_.dir));
    }
    close(fd_);
    fd_ = -1;
  }
  if (!status.ok()) std::cerr << "recsys_server: at close: " << status.message() << "\n";
}

void FeedbackLog::Run() {
  for (;;) {
    std::vector<Pending> calls;
    std::string served;
    bool closing;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closing_ || !pending_.empty() || served_.size() >= kServedFlushBytes;
      };
      // Wakes for calls at once; for served records alone after the flush interval.
      mu_.AwaitWithTimeout(absl::Condition(&has_work), options_.served_flush_interval);
      calls.swap(pending_);
      served.swap(served_);
      closing = closing_;  // Append adds nothing once it is set: this is the last batch.
    }
    if (!calls.empty() || !served.empty()) Commit(std::move(calls), std::move(served));
    if (closing) return;
  }
}

void FeedbackLog::Commit(std::vector<Pending> calls, std::string served) {
  const absl::Time start = absl::Now();
  // Which events are new: not in the index, and not earlier in this batch.
  std::vector<FeedbackResult> results(calls.size());
  absl::flat_hash_set<std::string> new_keys;
  std::string text = std::move(served);
  for (size_t c = 0; c < calls.size(); ++c) {
    const FeedbackRequest& request = calls[c].request;
    for (const FeedbackEntry& entry : request.events) {
      std::string key = Key(request.request_id, entry.item_id, FeedbackEventName(entry.event));
      if (index_.contains(key) || !new_keys.insert(std::move(key)).second) {
        ++results[c].duplicates;
        continue;
      }
      AppendFeedbackLine(&text, request.request_id, entry, calls[c].received);
      ++results[c].accepted;
      ++results[c].accepted_by_event[static_cast<int>(entry.event)];
    }
  }

  FeedbackLogCommit commit;
  absl::Status status;
  if (broken_) {
    status = absl::UnavailableError(
        "feedback log: an earlier write failed and could not be undone; nothing is stored until "
        "the server restarts");
  } else if (!text.empty()) {
    status = RotateIfFull(text.size(), &commit.rotated);
    if (status.ok()) status = WriteAll(text);
    if (status.ok() && !new_keys.empty()) {  // Served records alone are not synced.
      commit.synced = true;
      if (fdatasync(fd_) != 0) {
        status = absl::UnavailableError(Errno("fdatasync", options_.dir));
        // After a failed fdatasync the written pages' fate is unknown: take them back out.
        if (ftruncate(fd_, file_bytes_ - static_cast<int64_t>(text.size())) != 0 ||
            fdatasync(fd_) != 0) {
          broken_ = true;
        } else {
          file_bytes_ -= static_cast<int64_t>(text.size());
        }
      }
    }
  }
  if (!text.empty() || !status.ok()) {
    commit.ok = status.ok();
    commit.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (options_.on_commit) options_.on_commit(commit);
  }
  if (status.ok()) {
    for (const std::string& key : new_keys) AddKey(key);
  } else {
    std::cerr << "recsys_server: " << status.message() << "\n";
  }
  for (size_t c = 0; c < calls.size(); ++c) {
    if (status.ok()) {
      calls[c].done(results[c]);
    } else {
      calls[c].done(absl::UnavailableError(
          absl::StrCat(status.message(), "; nothing of this call was stored, retry it")));
    }
  }
}

absl::Status FeedbackLog::RotateIfFull(size_t bytes, bool* rotated) {
  if (file_bytes_ == 0 || file_bytes_ + static_cast<int64_t>(bytes) <= options_.max_file_bytes) {
    return absl::OkStatus();
  }
  if (absl::Status s = RenameCurrent(); !s.ok()) return s;
  // From here on the current file is gone: failing to make a new one durable breaks the log.
  if (absl::Status s = OpenCurrent(); !s.ok()) {
    broken_ = true;
    return s;
  }
  window_.emplace_back();
  while (window_.size() > static_cast<size_t>(options_.dedup_rotated_files) + 1) {
    for (const std::string& key : window_.front()) index_.erase(key);
    window_.pop_front();
  }
  *rotated = true;
  return absl::OkStatus();
}

absl::Status FeedbackLog::RenameCurrent() {
  const std::string current = options_.dir + "/" + kCurrentName;
  // Served records were written without a sync: the rotated file is complete on disk.
  if (fdatasync(fd_) != 0) return absl::UnavailableError(Errno("fdatasync", current));
  const std::string name = absl::StrFormat(
      "%s%s-%06d%s", kRotatedPrefix,
      absl::FormatTime("%Y%m%dT%H%M%E3SZ", Now(), absl::UTCTimeZone()), next_seq_, kSuffix);
  const std::string path = options_.dir + "/" + name;
  if (rename(current.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(Errno("rename to " + name, current));
  }
  ++next_seq_;
  close(fd_);
  fd_ = -1;
  return absl::OkStatus();
}

absl::Status FeedbackLog::WriteAll(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const absl::Status status =
          n == 0 ? absl::UnavailableError(absl::StrCat("write ", options_.dir, "/", kCurrentName,
                                                       ": wrote nothing (disk full?)"))
                 : absl::UnavailableError(Errno("write", options_.dir + "/" + kCurrentName));
      // A partial write is taken back out, so the file holds only whole, acknowledged lines.
      if (done > 0 && ftruncate(fd_, file_bytes_) != 0) broken_ = true;
      return status;
    }
    done += static_cast<size_t>(n);
  }
  file_bytes_ += static_cast<int64_t>(text.size());
  return absl::OkStatus();
}

}  // namespace recsys::server
