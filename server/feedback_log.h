#ifndef RECSYS_SERVER_FEEDBACK_LOG_H_
#define RECSYS_SERVER_FEEDBACK_LOG_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/feedback.h"

namespace recsys::server {

// One write of the writer thread, for metrics.
struct FeedbackLogCommit {
  bool ok = true;        // False: a write, fdatasync or rotation failed.
  bool synced = false;   // The write was fdatasync'ed (it held feedback, not only served records).
  bool rotated = false;  // The current file was rotated before the write.
  double seconds = 0.0;  // Write (and rotation and fdatasync) time.
};

struct FeedbackLogOptions {
  // The log directory; created if missing. Required.
  std::string dir;
  // The current file is rotated before a write that would take it past this size. A file is
  // larger only when one write alone is (it then holds that write alone). Default: 64 MiB.
  int64_t max_file_bytes = int64_t{64} << 20;
  // Deduplication window: the index of stored (request_id, item_id, event) keys covers the
  // current file and this many of the newest rotated files still in the directory. Default: 3.
  int dedup_rotated_files = 3;
  // Served records wait in memory at most this long (or until 1 MiB of them has gathered, or
  // the next feedback write) before they are written; they are never fdatasync'ed on their own.
  // Default: 1 s.
  absl::Duration served_flush_interval = absl::Seconds(1);
  // The clock of "received" times and rotated file names. Default: absl::Now.
  std::function<absl::Time()> clock;
  // Called on the writer thread after each write (metrics). Default: none.
  std::function<void(const FeedbackLogCommit&)> on_commit;
};

// The durable feedback log: a directory of JSON-lines files (format: docs/feedback_log.md),
// the current one `feedback.jsonl`, rotated by size to
// `feedback-<yyyymmddThhmmss.mmmZ>-<seq>.jsonl`. Rotated files are never deleted here (a log
// collector ships and removes them).
//
// Durability: Append completes a call with OK only after its events are written and
// fdatasync'ed, so every acknowledged event is on disk. Calls that arrive while a write is in
// progress are written together in the next one (group commit: one write and one fdatasync for
// all of them). Served records are analytics: buffered (FeedbackLogOptions::
// served_flush_interval) and written without a sync of their own; they reach the disk with the
// next feedback write's fdatasync or a rotation. A crash of the process loses at most the
// served records of the last interval; a crash of the machine also those written since the last
// fdatasync.
//
// Idempotence: an event whose (request_id, item_id, event) is in the index is not written again
// and counts as a duplicate. The index is rebuilt at Open from the files in its window
// (FeedbackLogOptions::dedup_rotated_files), so a restarted server still deduplicates; a
// retry of an event that has left the window (or whose file the collector already removed) is
// written again, so readers deduplicate on the same key too. Memory: about 100 bytes per key,
// (dedup_rotated_files + 1) x max_file_bytes / (bytes per feedback line, ~150) keys at most.
//
// A failed write or fdatasync fails every call of that write with UNAVAILABLE and truncates the
// file back to where the write began, so nothing of those calls is in the log and a retry
// stores them once. When the truncation or a rotation fails too, the log refuses every later
// call (UNAVAILABLE) until the process restarts and Open repairs it.
//
// Thread-safe. One writer thread, owned; the destructor closes the log.
class FeedbackLog {
 public:
  // Called once per Append, on the writer thread (or on the caller's when the log is closed).
  using Done = std::function<void(absl::StatusOr<FeedbackResult>)>;

  // Opens (creating) the directory, drops a partial last line of the current file (a write that
  // a crash cut short; it was never acknowledged), rebuilds the index and starts the writer.
  // Errors: INVALID_ARGUMENT for bad options, the file system's errors naming the path.
  static absl::StatusOr<std::unique_ptr<FeedbackLog>> Open(const FeedbackLogOptions& options);
  ~FeedbackLog();

  // Stores the events of `request` that are not in the log yet; `done` gets the counts once they
  // are on disk, or UNAVAILABLE when they could not be written (then none was) or the log is
  // closed. REQUIRES: ValidateFeedback(request) is OK.
  void Append(FeedbackRequest request, Done done);

  // Buffers `record` for the next write (see the class comment). Dropped when the log is closed.
  void AppendServed(const ServedRecord& record);

  // Writes everything pending (completing every Append) and syncs it, stops the writer, and
  // rotates the current file when it is not empty, so that everything written is in complete
  // rotated files. Later Appends answer UNAVAILABLE. Idempotent.
  void Close();

  const std::string& dir() const { return options_.dir; }

 private:
  struct Pending {
    FeedbackRequest request;
    absl::Time received;
    Done done;
  };
  // Keys of one file, oldest file first; a deque keeps each string in place, so the index can
  // hold views of them.
  using FileKeys = std::deque<std::string>;

  explicit FeedbackLog(const FeedbackLogOptions& options);
  absl::Time Now() const { return options_.clock ? options_.clock() : absl::Now(); }

  // Open's steps.
  absl::Status Recover();
  absl::Status LoadIndex();
  absl::Status OpenCurrent();

  // The writer thread: waits for work, then Commit()s it.
  void Run();
  // Writes one group of calls and served records, completes the calls.
  void Commit(std::vector<Pending> calls, std::string served);
  // Rotates the current file when `bytes` more would take it past max_file_bytes.
  absl::Status RotateIfFull(size_t bytes, bool* rotated);
  // Syncs the current file, renames it to the next rotated name and closes it (no current file
  // is open afterwards). The directory is not synced.
  absl::Status RenameCurrent();
  // Writes `text` at the end of the current file; on failure truncates it back.
  absl::Status WriteAll(const std::string& text);
  void AddKey(std::string key);

  const FeedbackLogOptions options_;
  // Writer-thread state (and Open's, before the thread starts).
  int fd_ = -1;
  int64_t file_bytes_ = 0;
  int64_t next_seq_ = 1;
  bool broken_ = false;  // A failed write could not be undone.
  std::deque<FileKeys> window_;
  absl::flat_hash_set<absl::string_view> index_;

  absl::Mutex mu_;
  std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::string served_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;
  absl::Mutex close_mu_;  // Serialises Close.
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_FEEDBACK_LOG_H_
