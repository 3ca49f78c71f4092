#ifndef RECSYS_SERVER_PROTOBUF_LOG_H_
#define RECSYS_SERVER_PROTOBUF_LOG_H_

#include <cstdint>

#include "absl/time/time.h"

namespace recsys::server {

// Routes libprotobuf's log lines (to stderr, in libprotobuf's format) through a limiter: at
// most `burst` lines at once, refilled at one line per `interval`; lines beyond that are
// dropped and counted, and the next line that passes says how many were dropped. A client
// that sends a string that is not UTF-8 makes libprotobuf log one ERROR per request, which
// would otherwise let any client flood the log.
//
// Process-wide: call once from main before serving (libprotobuf's SetLogHandler is not
// thread-safe). The handler itself is thread-safe.
void LimitProtobufLogging(int burst = 10, absl::Duration interval = absl::Seconds(10));

// Lines dropped by the limiter so far.
int64_t ProtobufLogLinesDropped();

}  // namespace recsys::server

#endif  // RECSYS_SERVER_PROTOBUF_LOG_H_
