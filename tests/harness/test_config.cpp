#include <gtest/gtest.h>

#include "harness/config.h"
#include "harness/error.h"
#include "harness/weights.h"

namespace kvbench {
namespace {

TEST(ModelConfig, RejectsHeadsNotMultipleOfKvHeads) {
  ModelConfig c;
  c.heads = 6;
  c.kv_heads = 4;
  try {
    c.validate();
    FAIL() << "validate accepted H=6, H_kv=4";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kv_heads=4"), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, RejectsZeroHeadDim) {
  ModelConfig c;
  c.head_dim = 0;
  EXPECT_THROW(c.validate(), Error);
}

TEST(ModelConfig, KvBytesPerTokenFollowsFormula) {
  ModelConfig c;
  c.layers = 3;
  c.kv_heads = 2;
  c.heads = 4;
  c.head_dim = 5;
  c.dtype = DType::f16;
  EXPECT_EQ(c.kv_bytes_per_token(), 2u * 3 * 2 * 5 * 2);
}

TEST(ModelWeights, SameSeedSameBitsOtherSeedOtherBits) {
  ModelConfig c;
  auto a = ModelWeights::from_seed(c);
  auto b = ModelWeights::from_seed(c);
  c.seed = 2;
  auto other = ModelWeights::from_seed(c);
  EXPECT_EQ(a->layers[0].wq, b->layers[0].wq);
  EXPECT_NE(a->layers[0].wq, other->layers[0].wq);
  EXPECT_EQ(a->layers[0].wk.size(), static_cast<std::size_t>(c.kv_width() * c.d_model));
}

TEST(NamedShapes, KnownAndUnknown) {
  EXPECT_EQ(find_shape("llama3-8b").config.kv_heads, 8);
  EXPECT_THROW(find_shape("llama9"), Error);
}

}  // namespace
}  // namespace kvbench
