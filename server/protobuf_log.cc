#include "server/protobuf_log.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"

namespace recsys::server {

namespace {

struct Limiter {
  absl::Mutex mu;
  int burst ABSL_GUARDED_BY(mu) = 10;
  absl::Duration interval ABSL_GUARDED_BY(mu) = absl::Seconds(10);
  double tokens ABSL_GUARDED_BY(mu) = 10;
  absl::Time last ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  int64_t dropped_since_last ABSL_GUARDED_BY(mu) = 0;
  int64_t dropped_total ABSL_GUARDED_BY(mu) = 0;
};

Limiter& GetLimiter() {
  static auto* limiter = new Limiter();
  return *limiter;
}

const char* LevelName(google::protobuf::LogLevel level) {
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      return "INFO";
    case google::protobuf::LOGLEVEL_WARNING:
      return "WARNING";
    case google::protobuf::LOGLEVEL_ERROR:
      return "ERROR";
    default:
      return "FATAL";
  }
}

void Handle(google::protobuf::LogLevel level, const char* filename, int line,
            const std::string& message) {
  Limiter& limiter = GetLimiter();
  int64_t dropped = 0;
  {
    absl::MutexLock lock(&limiter.mu);
    const absl::Time now = absl::Now();
    if (limiter.last != absl::InfinitePast()) {
      limiter.tokens = std::min<double>(
          limiter.burst, limiter.tokens + absl::FDivDuration(now - limiter.last, limiter.interval));
    }
    limiter.last = now;
    // FATAL lines always pass: libprotobuf aborts after them.
    if (limiter.tokens < 1 && level != google::protobuf::LOGLEVEL_FATAL) {
      ++limiter.dropped_since_last;
      ++limiter.dropped_total;
      return;
    }
    limiter.tokens -= 1;
    dropped = limiter.dropped_since_last;
    limiter.dropped_since_last = 0;
  }
  if (dropped > 0) {
    std::fprintf(stderr, "[libprotobuf %s %s:%d] %s (%lld similar lines dropped before this one)\n",
                 LevelName(level), filename, line, message.c_str(),
                 static_cast<long long>(dropped));
  } else {
    std::fprintf(stderr, "[libprotobuf %s %s:%d] %s\n", LevelName(level), filename, line,
                 message.c_str());
  }
}

}  // namespace

void LimitProtobufLogging(int burst, absl::Duration interval) {
  {
    Limiter& limiter = GetLimiter();
    absl::MutexLock lock(&limiter.mu);
    limiter.burst = burst;
    limiter.interval = interval;
    limiter.tokens = burst;
    limiter.last = absl::InfinitePast();
  }
  google::protobuf::SetLogHandler(&Handle);
}

int64_t ProtobufLogLinesDropped() {
  Limiter& limiter = GetLimiter();
  absl::MutexLock lock(&limiter.mu);
  return limiter.dropped_total;
}

}  // namespace recsys::server
