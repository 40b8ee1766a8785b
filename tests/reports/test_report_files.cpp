// `kvbench report` end to end on a synthetic bench output: every file, a self-contained
// HTML, and fits.json with the figures for machines.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/error.h"
#include "reports/plots.h"
#include "reports/render.h"
#include "tests/reports/synthetic.h"

namespace kvbench::reports {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool have_gnuplot() {
  try {
    require_gnuplot();
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(Report, WritesEveryFileSelfContained) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not found: install the Debian package gnuplot-nox";
  const std::string dir = ::testing::TempDir() + "/kvbench-report-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  testing::Synthetic s;
  const std::string input = dir + "/bench.json";
  std::ofstream(input) << s.standard().dump(1);
  const std::string out = dir + "/report";
  const ReportFiles files = write_report(input, out);

  ASSERT_EQ(files.plots.size(), 5u);
  for (const auto& p : files.plots) {
    EXPECT_FALSE(p.empty) << p.name;
    const std::string svg = slurp(p.svg), png = slurp(p.png);
    EXPECT_NE(svg.find("<svg"), std::string::npos) << p.svg;
    ASSERT_GT(png.size(), 8u) << p.png;
    EXPECT_EQ(png.substr(1, 3), "PNG") << p.png;
  }
  for (const char* name : {"scaling", "latency", "speedup", "memory", "bandwidth"}) {
    EXPECT_TRUE(fs::exists(out + "/" + name + ".svg")) << name;
    EXPECT_TRUE(fs::exists(out + "/" + name + ".png")) << name;
  }

  const std::string html = slurp(files.html);
  EXPECT_EQ(count(html, "data:image/svg+xml;base64,"), 5u);
  // Self-contained: nothing fetched from elsewhere.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_NE(html.find("class=\"met\""), std::string::npos);
  EXPECT_NE(html.find("naive stopped"), std::string::npos);

  const std::string md = slurp(files.markdown);
  EXPECT_NE(md.find("## Verdicts"), std::string::npos);
  EXPECT_NE(md.find("![scaling](scaling.png)"), std::string::npos);
  EXPECT_NE(md.find("naive: generation time (setup included) grows as T^2"), std::string::npos) << md;

  const nlohmann::json fits = nlohmann::json::parse(slurp(files.fits));
  const auto& naive = fits["implementations"]["naive"]["generate"];
  EXPECT_NEAR(naive["exponent"].get<double>(), 2.0, 0.05);
  EXPECT_NEAR(naive["r2"].get<double>(), 1.0, 1e-3);
  EXPECT_EQ(naive["local_exponents"].size(), 6u);
  EXPECT_TRUE(fits["implementations"]["cpu_cached"]["decode_step"].contains("threads:2"));
  ASSERT_EQ(fits["targets"].size(), 9u);
  for (const auto& t : fits["targets"]) {
    EXPECT_TRUE(t.contains("measured") && t.contains("verdict")) << t.dump();
  }
  EXPECT_FALSE(fits["verdicts"].empty());
}

// The summary's setup lines and the sentence on where setup would have dominated (the
// Markdown needs no plots: no gnuplot).
TEST(Report, SummaryStatesSetupAndWhereItWouldHaveDominated) {
  testing::Synthetic s;
  s.setup = [](const std::string& impl, int T) { return impl == "cpu_cached" && T <= 32 ? 1.0 : 1e-9; };
  const BenchData data = parse_bench(s.standard(), "setup.json");
  const std::string md = render_markdown(data, analyze(data), {});
  EXPECT_NE(md.find("### Setup: creating the sequence, timed apart from the decode steps"),
            std::string::npos) << md;
  EXPECT_NE(md.find("- cpu_cached: setup 1 s at T = 16 ("), std::string::npos) << md;
  EXPECT_NE(md.find("- torch_static: setup 1 ns at T = 16 ("), std::string::npos) << md;
  EXPECT_NE(md.find("### Where setup would have dominated\n\n- Setup would have dominated"),
            std::string::npos) << md;
  EXPECT_NE(md.find("cpu_cached at T = 16 ("), std::string::npos) << md;
  EXPECT_NE(md.find("cpu_cached at T = 32 ("), std::string::npos) << md;
  EXPECT_EQ(md.find("cpu_cached at T = 64 ("), std::string::npos) << md;

  testing::Synthetic quiet;
  quiet.setup = [](const std::string&, int) { return 1e-9; };
  const BenchData q = parse_bench(quiet.standard(), "quiet.json");
  const std::string qmd = render_markdown(q, analyze(q), {});
  EXPECT_NE(qmd.find("### Where setup would have dominated\n\n- Nowhere:"), std::string::npos)
      << qmd;
  EXPECT_EQ(qmd.find("Setup would have dominated"), std::string::npos) << qmd;

  testing::Synthetic old;  // no setup counter
  const BenchData o = parse_bench(old.standard(), "old.json");
  const std::string omd = render_markdown(o, analyze(o), {});
  EXPECT_NE(omd.find("- cpu_cached: setup not recorded"), std::string::npos) << omd;
}

// The Serving section: the beam and prefix tables and their sentences, kept out of the
// Verdicts list; an output without them says not measured.
TEST(Report, SummaryHasAServingSection) {
  testing::Synthetic s;
  s.add_beam("cpu_cached", 4, 4000, 3800, 400000, 1e-4);
  s.add_beam("paged", 4, 1000, 900, 32000, 1.5e-4);
  s.add_prefix("paged", 512, 448, 0.0101, 0.0100, 0);
  const BenchData data = parse_bench(s.standard(), "serving.json");
  const Analysis a = analyze(data);
  const std::string md = render_markdown(data, a, {});
  const std::size_t serving = md.find("\n## Serving\n");
  ASSERT_NE(serving, std::string::npos) << md;
  EXPECT_NE(md.find("| paged | 4 | 1000 B | 900 B | 31.2 KiB | 75% | 92% | 37%-55% | 150 us |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| paged | 512 | 448 | 10.1 ms | 10 ms | 1.01 | 0 |"), std::string::npos) << md;
  EXPECT_GT(md.find("- paged at width 4: peak"), serving) << "in the Serving section only";
  EXPECT_EQ(count(md, "- paged at width 4: peak"), 1u);
  const std::string html = render_html(data, a, {});
  EXPECT_NE(html.find("<h2>Serving</h2>"), std::string::npos);
  EXPECT_NE(html.find("<td>75%</td>"), std::string::npos);

  testing::Synthetic old;
  const BenchData o = parse_bench(old.standard(), "old.json");
  const std::string omd = render_markdown(o, analyze(o), {});
  EXPECT_NE(omd.find("## Serving\n\n- not measured: the bench output has no beam"),
            std::string::npos) << omd;
}

// With beam benchmarks the report draws a sixth plot, the beam memory; without, five (above).
TEST(Report, BeamMemoryPlotWhenBeamsWereMeasured) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not found: install the Debian package gnuplot-nox";
  const std::string dir = ::testing::TempDir() + "/kvbench-report-beam-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  testing::Synthetic s;
  s.add_beam("cpu_cached", 4, 4000, 3800, 400000, 1e-4);
  s.add_beam("cpu_cached", 8, 8000, 7600, 800000, 2e-4);
  s.add_beam("paged", 4, 1000, 900, 32000, 1.5e-4);
  s.add_beam("paged", 8, 1500, 1400, 32000, 2e-4);
  const std::string input = dir + "/bench.json";
  std::ofstream(input) << s.standard().dump(1);
  const ReportFiles files = write_report(input, dir + "/report");
  ASSERT_EQ(files.plots.size(), 6u);
  EXPECT_EQ(files.plots.back().name, "beam_memory");
  EXPECT_FALSE(files.plots.back().empty);
  EXPECT_NE(slurp(files.plots.back().svg).find("<svg"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/report/data/beam_paged.dat"));
}

TEST(Report, MissingInputIsAnErrorNamingIt) {
  try {
    write_report("/nonexistent/x.json", ::testing::TempDir() + "/kvbench-report-missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvbench::reports
