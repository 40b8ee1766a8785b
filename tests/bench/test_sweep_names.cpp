#include <gtest/gtest.h>

#include "harness/bench/names.h"
#include "harness/bench/sweep.h"
#include "harness/error.h"

namespace kvbench::bench {
namespace {

TEST(ParseSweep, DoublingRangeIncludesBothEndsWhenOnTheWay) {
  EXPECT_EQ(parse_sweep("16..128"), (std::vector<int>{16, 32, 64, 128}));
  EXPECT_EQ(parse_sweep("3..20"), (std::vector<int>{3, 6, 12}));
}

TEST(ParseSweep, StepsListsAndDuplicates) {
  EXPECT_EQ(parse_sweep("100..300:+100"), (std::vector<int>{100, 200, 300}));
  EXPECT_EQ(parse_sweep("1..64:x4"), (std::vector<int>{1, 4, 16, 64}));
  EXPECT_EQ(parse_sweep("64, 16,16..32"), (std::vector<int>{16, 32, 64}));
  EXPECT_EQ(parse_sweep("7"), (std::vector<int>{7}));
}

TEST(ParseSweep, RejectsBadItemsNamingThem) {
  for (const char* bad : {"", "0", "-4", "16..8", "16..64:x1", "16..64:+0", "16..64:*2",
                          "a", "16,,32", "16..", "..16", "3000000000"}) {
    try {
      parse_sweep(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << "message does not quote the sweep: " << e.what();
    }
  }
}

TEST(BenchmarkNames, RoundTripWithGoogleBenchmarkSuffixes) {
  BenchmarkId g{BenchKind::generate, "cpu_cached", 1, 4096};
  EXPECT_EQ(benchmark_name(g), "generate/cpu_cached/T:4096");
  BenchmarkId d{BenchKind::decode_step, "torch_static", 2, 16384};
  EXPECT_EQ(benchmark_name(d), "decode_step/torch_static/threads:2/pos:16384");
  EXPECT_EQ(series_name(d), "decode_step/torch_static/threads:2");
  for (const std::string suffix : {"", "/manual_time", "/manual_time_mean",
                                   "/repeats:3/manual_time_median"}) {
    auto pg = parse_benchmark_name(benchmark_name(g) + suffix);
    ASSERT_TRUE(pg) << suffix;
    EXPECT_EQ(pg->kind, BenchKind::generate);
    EXPECT_EQ(pg->impl, "cpu_cached");
    EXPECT_EQ(pg->size, 4096);
    auto pd = parse_benchmark_name(benchmark_name(d) + suffix);
    ASSERT_TRUE(pd) << suffix;
    EXPECT_EQ(pd->kind, BenchKind::decode_step);
    EXPECT_EQ(pd->impl, "torch_static");
    EXPECT_EQ(pd->threads, 2);
    EXPECT_EQ(pd->size, 16384);
  }
  // Aggregates glued to the last part by Google Benchmark when there is no manual_time.
  auto agg = parse_benchmark_name("decode_step/x/threads:1/pos:64_median");
  ASSERT_TRUE(agg);
  EXPECT_EQ(agg->size, 64);
}

TEST(BenchmarkNames, ServingBenchmarksRoundTrip) {
  BenchmarkId b{BenchKind::beam, "paged", 1, 8};
  EXPECT_EQ(benchmark_name(b), "beam/paged/width:8");
  EXPECT_EQ(series_name(b), "beam/paged");
  BenchmarkId p{BenchKind::prefix_prefill, "cpu_cached", 1, 512};
  EXPECT_EQ(benchmark_name(p), "prefix_prefill/cpu_cached/P:512");
  for (const BenchmarkId& id : {b, p}) {
    const auto back = parse_benchmark_name(benchmark_name(id) + "/manual_time");
    ASSERT_TRUE(back) << benchmark_name(id);
    EXPECT_EQ(back->kind, id.kind);
    EXPECT_EQ(back->impl, id.impl);
    EXPECT_EQ(back->size, id.size);
  }
  for (const char* bad : {"beam/x/width:0", "beam/x/T:4", "prefix_prefill/x/pos:4"}) {
    EXPECT_FALSE(parse_benchmark_name(bad)) << bad;
  }
}

TEST(BenchmarkNames, RejectsForeignNames) {
  for (const char* bad : {"BM_memcpy/64", "generate/x", "generate//T:4", "generate/x/N:4",
                          "decode_step/x/pos:4", "decode_step/x/threads:0/pos:4",
                          "generate/x/T:abc"}) {
    EXPECT_FALSE(parse_benchmark_name(bad)) << bad;
  }
}

}  // namespace
}  // namespace kvbench::bench
