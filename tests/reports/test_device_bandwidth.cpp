// A device implementation (cuda_cached) in a bench output: the report reads the device's own
// bandwidth from the kvbench context, sets the device implementation's K/V read rate against
// it (never against the host's single-thread bandwidth), and draws the device's lines on the
// bandwidth plot. Synthetic data: no GPU needed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "reports/analysis.h"
#include "reports/bench_data.h"
#include "reports/render.h"
#include "tests/reports/synthetic.h"

namespace kvbench::reports {
namespace {

namespace fs = std::filesystem;
using bench::BenchKind;
using nlohmann::json;
using testing::Synthetic;

constexpr double kDeviceRead = 3.0e12, kDeviceCopy = 2.6e12;

// The standard synthetic run plus cuda_cached decode steps (100x faster than the model) and,
// when `with_bandwidth`, the device bandwidth the runner writes (device_bandwidth.h layout).
json with_cuda(bool with_bandwidth, const std::string& error = "") {
  Synthetic s;
  s.factor = [](const std::string& impl, int, BenchKind, int) {
    return impl == "cuda_cached" ? 0.01 : 1.0;
  };
  for (int t = 16; t <= 16384; t *= 4) s.add("cuda_cached", BenchKind::decode_step, t);
  json doc = s.standard();
  json k = json::parse(doc["context"]["kvbench"].get<std::string>());
  for (auto& impl : k["implementations"]) impl["device"] = "cpu";
  k["implementations"].push_back({{"name", "cuda_cached"}, {"device", "cuda"}});
  if (with_bandwidth) {
    json b = {{"device", "cuda"},
              {"name", "Synthetic GPU"},
              {"read_bytes_per_second", error.empty() ? kDeviceRead : 0.0},
              {"copy_bytes_per_second", error.empty() ? kDeviceCopy : 0.0},
              {"copy_bytes_counted_per_byte_copied", 2},
              {"buffer_bytes", 1 << 30},
              {"runs", json::array()}};
    if (!error.empty()) b["error"] = error;
    k["device_bandwidth"] = {{"cuda", b}};
  }
  doc["context"]["kvbench"] = k.dump();
  return doc;
}

const BandwidthPoint* point(const Analysis& a, const std::string& impl, double position) {
  for (const auto& p : a.bandwidth) {
    if (p.impl == impl && p.threads == 1 && p.position == position) return &p;
  }
  return nullptr;
}

TEST(DeviceBandwidth, ReadFromTheContextWithEachImplementationsDevice) {
  const BenchData d = parse_bench(with_cuda(true));
  ASSERT_EQ(d.device_bandwidth.size(), 1u);
  EXPECT_EQ(d.device_bandwidth[0].device, "cuda");
  EXPECT_EQ(d.device_bandwidth[0].name, "Synthetic GPU");
  EXPECT_EQ(d.device_bandwidth[0].read, kDeviceRead);
  EXPECT_EQ(d.device_bandwidth[0].copy, kDeviceCopy);
  EXPECT_EQ(d.device_bandwidth[0].buffer_bytes, 1 << 30);
  EXPECT_EQ(d.device_of("cuda_cached"), "cuda");
  EXPECT_EQ(d.device_of("cpu_cached"), "cpu");
  EXPECT_EQ(d.device_of("not_in_the_list"), "cpu");
  ASSERT_NE(d.device_bandwidth_of("cuda"), nullptr);
  EXPECT_EQ(d.device_bandwidth_of("cpu"), nullptr);
}

TEST(DeviceBandwidth, AFailedMeasurementIsLeftOut) {
  const BenchData d = parse_bench(with_cuda(true, "no CUDA device"));
  EXPECT_TRUE(d.device_bandwidth.empty());
  EXPECT_TRUE(parse_bench(with_cuda(false)).device_bandwidth.empty());
}

TEST(DeviceBandwidth, DeviceStepsAreSetAgainstTheDeviceNotTheHost) {
  const Analysis a = analyze(parse_bench(with_cuda(true)));
  // cuda_cached is analysed like any other cache: a decode series and bandwidth points.
  ASSERT_NE(a.find_decode("cuda_cached", 1), nullptr);
  const BandwidthPoint* gpu = point(a, "cuda_cached", 16384);
  const BandwidthPoint* cpu = point(a, "cpu_cached", 16384);
  ASSERT_TRUE(gpu && cpu);
  EXPECT_EQ(gpu->device, "cuda");
  EXPECT_EQ(cpu->device, "cpu");
  // Ratios of the same numbers: exact up to one rounding of each division.
  EXPECT_DOUBLE_EQ(gpu->of_read, gpu->bytes_per_second / kDeviceRead);
  EXPECT_DOUBLE_EQ(gpu->of_copy, gpu->bytes_per_second / kDeviceCopy);
  EXPECT_DOUBLE_EQ(cpu->of_read, cpu->bytes_per_second / a.read_bandwidth);
  // The device bandwidth goes into fits.json.
  const json fits = a.to_json();
  EXPECT_EQ(fits["device_bandwidth"]["cuda"]["read_bytes_per_second"].get<double>(), kDeviceRead);
  EXPECT_EQ(fits["device_bandwidth"]["cuda"]["copy_counts"], "bytes read + bytes written");
}

TEST(DeviceBandwidth, WithoutADeviceMeasurementNoFractionIsClaimed) {
  const Analysis a = analyze(parse_bench(with_cuda(false)));
  const BandwidthPoint* gpu = point(a, "cuda_cached", 16384);
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->of_read, 0);  // not a fraction of the host's bandwidth
  EXPECT_EQ(gpu->of_copy, 0);
  bool said = false;
  for (const auto& v : a.verdicts) {
    said = said || v.text.find("no cuda device bandwidth") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

bool have_gnuplot() { return std::system("gnuplot --version > /dev/null 2>&1") == 0; }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DeviceBandwidth, BandwidthPlotDrawsTheDeviceLines) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not found: install the Debian package gnuplot-nox";
  const std::string dir = ::testing::TempDir() + "/kvbench-device-report-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string input = dir + "/bench.json";
  for (const bool with : {true, false}) {
    std::ofstream(input) << with_cuda(with).dump(1);
    const std::string out = dir + (with ? "/with" : "/without");
    const ReportFiles files = write_report(input, out);
    const std::string script = slurp(out + "/data/bandwidth.gp");
    ASSERT_FALSE(script.empty());
    EXPECT_EQ(script.find("cuda Synthetic GPU read-only") != std::string::npos, with) << script;
    EXPECT_EQ(script.find("cuda Synthetic GPU copy") != std::string::npos, with) << script;
    EXPECT_NE(script.find("cuda_cached"), std::string::npos) << script;
    if (with) {
      EXPECT_NE(slurp(files.markdown).find("cuda device bandwidth"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace kvbench::reports
