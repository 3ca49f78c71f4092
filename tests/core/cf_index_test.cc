#include "core/cf_index.h"

#include <cmath>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::core {
namespace {

using ::testing::HasSubstr;

// Customers {A,B,C}, {A,B}, {B,C}, {A,A}, {D} with A=0, B=1, C=2, D=3, shrinkage 1:
// c_A = 3, c_B = 3, c_C = 2; c_AB = 2, c_AC = 1, c_BC = 2.
const std::vector<std::vector<ItemIndex>> kBaskets = {{0, 1, 2}, {0, 1}, {1, 2}, {0, 0}, {3}};
const double kSimAB = 2.0 / (3.0 + 1.0);
const double kSimAC = 1.0 / (std::sqrt(6.0) + 1.0);
const double kSimBC = 2.0 / (std::sqrt(6.0) + 1.0);

CfIndex BuildTiny(int k) {
  CfBuildOptions options;
  options.shrinkage = 1.0;
  options.neighbors_per_item = k;
  return CfIndex::Build(4, kBaskets, options);
}

TEST(CfIndexTest, ComputesShrunkCosineNeighboursMostSimilarFirst) {
  CfIndex index = BuildTiny(100);
  ASSERT_EQ(index.num_items(), 4);
  auto a = index.neighbors(0);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].item, 1);
  EXPECT_FLOAT_EQ(a[0].similarity, kSimAB);
  EXPECT_EQ(a[1].item, 2);
  EXPECT_FLOAT_EQ(a[1].similarity, kSimAC);
  auto b = index.neighbors(1);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].item, 2);
  EXPECT_FLOAT_EQ(b[0].similarity, kSimBC);
  EXPECT_EQ(b[1].item, 0);
  EXPECT_TRUE(index.neighbors(3).empty());  // D shares no customer with anything.
  EXPECT_FLOAT_EQ(index.Similarity(2, 1), kSimBC);
  EXPECT_EQ(index.Similarity(0, 3), 0.0f);
}

TEST(CfIndexTest, KeepsOnlyTopKNeighbours) {
  CfIndex index = BuildTiny(1);
  ASSERT_EQ(index.neighbors(0).size(), 1u);
  EXPECT_EQ(index.neighbors(0)[0].item, 1);
  ASSERT_EQ(index.neighbors(2).size(), 1u);
  EXPECT_EQ(index.neighbors(2)[0].item, 1);
  EXPECT_EQ(index.num_neighbors(), 3);
}

TEST(CfIndexTest, BuildIsTheSameWithOneOrManyThreads) {
  CfBuildOptions one, many;
  one.threads = 1;
  many.threads = 4;
  CfIndex a = CfIndex::Build(4, kBaskets, one);
  CfIndex b = CfIndex::Build(4, kBaskets, many);
  for (ItemIndex i = 0; i < 4; ++i) {
    ASSERT_EQ(a.neighbors(i).size(), b.neighbors(i).size());
    for (size_t j = 0; j < a.neighbors(i).size(); ++j) {
      EXPECT_EQ(a.neighbors(i)[j].item, b.neighbors(i)[j].item);
      EXPECT_EQ(a.neighbors(i)[j].similarity, b.neighbors(i)[j].similarity);
    }
  }
}

TEST(CfIndexTest, SavesAndLoadsTheSameIndex) {
  const std::string path = testing::MakeTempDir("cf_roundtrip") + "/cf_index.bin";
  CfIndex index = BuildTiny(100);
  ASSERT_TRUE(index.Save(path).ok());
  absl::StatusOr<CfIndex> loaded = CfIndex::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->num_items(), 4);
  EXPECT_EQ(loaded->num_neighbors(), index.num_neighbors());
  EXPECT_EQ(loaded->neighbors_per_item(), 100);
  EXPECT_FLOAT_EQ(loaded->shrinkage(), 1.0f);
  EXPECT_FLOAT_EQ(loaded->Similarity(0, 2), kSimAC);
}

class CorruptCfIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::MakeTempDir("cf_corrupt") + "/cf_index.bin";
    ASSERT_TRUE(BuildTiny(100).Save(path_).ok());
    std::ifstream in(path_, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  absl::Status LoadWith(const std::string& bytes) {
    testing::WriteFile(path_, bytes);
    return CfIndex::Load(path_).status();
  }
  std::string path_;
  std::string bytes_;
};

TEST_F(CorruptCfIndexTest, DetectsAFlippedByte) {
  std::string bytes = bytes_;
  bytes[bytes.size() - 10] ^= 0x01;
  absl::Status s = LoadWith(bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("checksum mismatch"));
}

TEST_F(CorruptCfIndexTest, DetectsTruncationAndBadMagic) {
  EXPECT_THAT(LoadWith(bytes_.substr(0, bytes_.size() - 4)).message(), HasSubstr("size"));
  std::string bad_magic = bytes_;
  bad_magic[0] = 'X';
  EXPECT_THAT(LoadWith(bad_magic).message(), HasSubstr("bad magic"));
  EXPECT_THAT(LoadWith("").message(), HasSubstr("too short"));
}

}  // namespace
}  // namespace recsys::core
