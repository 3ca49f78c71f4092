#include "server/protobuf_log.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.pb.h"

namespace recsys::server {
namespace {

TEST(ProtobufLogTest, AFloodOfInvalidUtf8IsCutToTheBurstAndCounted) {
  LimitProtobufLogging(3, absl::Hours(1));
  const int64_t dropped_before = ProtobufLogLinesDropped();
  const std::string not_utf8("\x0a\x02\xc3\x28", 4);  // request_id = "\xc3\x28".
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 50; ++i) {
    v1::RecommendRequest request;
    EXPECT_FALSE(request.ParseFromString(not_utf8));
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    ++lines;
    EXPECT_TRUE(absl::StrContains(line, "invalid UTF-8")) << line;
  }
  EXPECT_EQ(lines, 3);
  EXPECT_EQ(ProtobufLogLinesDropped() - dropped_before, 47);

  // Once tokens come back, the next line reports what was dropped.
  LimitProtobufLogging(1, absl::Milliseconds(200));
  ::testing::internal::CaptureStderr();
  v1::RecommendRequest request;
  EXPECT_FALSE(request.ParseFromString(not_utf8));
  EXPECT_FALSE(request.ParseFromString(not_utf8));  // Dropped: the burst is 1.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(request.ParseFromString(not_utf8));
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              ::testing::HasSubstr("(1 similar lines dropped before this one)"));
}

}  // namespace
}  // namespace recsys::server
