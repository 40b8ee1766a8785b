// Number formatting shared by the report writers.
#pragma once

#include <string>

namespace kvbench::reports {

std::string sig(double x, int digits = 3);          // 3 significant digits: "1.23e+04" -> "12300"
std::string fixed(double x, int decimals);          // "1.98"
std::string seconds_text(double s);                 // "12.3 us", "4.56 ms", "1.2 s"
std::string bytes_text(double bytes);               // "64 MiB", "2 KiB", "512 B"
std::string rate_text(double bytes_per_second);     // "14.2 GB/s"
std::string percent(double fraction);               // "88%"
std::string html_escape(const std::string& text);

}  // namespace kvbench::reports
