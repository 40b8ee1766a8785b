#include <iomanip>
#include <iostream>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/registry.h"

namespace kvbench::cli {

void add_list_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List implementations, their device and availability");
  auto plugins = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--plugin", *plugins, "Load implementations from a shared library first");
  cmd->callback([plugins] {
    Registry& registry = Registry::global();
    for (const auto& path : *plugins) registry.load_plugin(path);
    std::cout << std::left << std::setw(16) << "name" << std::setw(7) << "device"
              << std::setw(48) << "status" << "description\n";
    for (const ImplInfo* info : registry.all()) {
      const std::string why = info->why_unavailable();
      std::cout << std::left << std::setw(16) << info->name << std::setw(7) << info->device
                << std::setw(48) << (why.empty() ? "available" : "unavailable: " + why)
                << info->description << "\n";
    }
  });
}

}  // namespace kvbench::cli
