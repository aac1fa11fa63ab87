#include <trainscope/error.h>
#include <trainscope/serve/dashboard.h>

#include "serve/assets.h"
#include "serve/run_reader.h"

#include <trainscope/track/annotations.h>
#include <trainscope/track/run.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <map>
#include <mutex>
#include <thread>

namespace trainscope::serve {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxRuns = 2000;    // runs listed at most
constexpr size_t kMaxReaders = 256;  // open run stores kept at most
constexpr size_t kDefaultPoints = 2000;
constexpr size_t kMaxPoints = 20000;    // what a chart can draw usefully
constexpr size_t kMaxBody = 64 * 1024;  // the one body the API takes: a run's tags and note
constexpr const char* kCookie = "trainscope_token";

std::string dump(const nlohmann::json& j) {
  // Invalid UTF-8 in a run's texts must not fail the response.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(dump(j), "application/json; charset=utf-8");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

// A run is named by one path component: no separators, no "." or "..", no control characters.
bool valid_run_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string cookie_value(const std::string& cookies, const std::string& name) {
  size_t pos = 0;
  while (pos < cookies.size()) {
    size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string item = cookies.substr(pos, end - pos);
    item.erase(0, item.find_first_not_of(' '));
    if (item.rfind(name + "=", 0) == 0) return item.substr(name.size() + 1);
    pos = end + 1;
  }
  return {};
}

// Host header without its port: "127.0.0.1:6150" -> "127.0.0.1", "[::1]:6150" -> "::1".
std::string host_name_of(const std::string& host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    return close == std::string::npos ? host : host.substr(1, close - 1);
  }
  const size_t colon = host.find(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

bool is_annotations_path(const std::string& path) {
  constexpr std::string_view prefix = "/api/runs/", suffix = "/annotations";
  return path.size() > prefix.size() + suffix.size() && path.rfind(prefix, 0) == 0 &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool parse_int(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  const std::string h = host_name_of(host);
  if (h == "localhost" || h == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

struct Dashboard::Impl {
  DashboardOptions options;
  fs::path runs_dir;  // canonical when it exists
  httplib::Server server;
  std::thread thread;
  int port = 0;
  bool started = false;
  std::atomic<bool> done{false};

  std::mutex readers_mu;
  struct Entry {
    std::shared_ptr<RunReader> reader;
    ino_t inode = 0;
  };
  std::map<std::string, Entry> readers;

  // The run's directory when `name` is a run directly under the runs directory.
  std::optional<fs::path> run_file(const std::string& name) {
    if (!valid_run_name(name)) return std::nullopt;
    std::error_code ec;
    const fs::path dir = runs_dir / name;
    const fs::path canonical = fs::canonical(dir, ec);
    if (ec || canonical.parent_path() != fs::weakly_canonical(runs_dir, ec)) return std::nullopt;
    const fs::path file = canonical / "run.sqlite";
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
    return file;
  }

  std::shared_ptr<RunReader> reader(const std::string& name) {
    const auto file = run_file(name);
    if (!file) return nullptr;
    struct stat st {};
    if (::stat(file->c_str(), &st) != 0) return nullptr;
    std::lock_guard lock(readers_mu);
    auto it = readers.find(name);
    if (it != readers.end() && it->second.inode == st.st_ino) return it->second.reader;
    if (readers.size() >= kMaxReaders) readers.clear();  // in-flight requests keep theirs alive
    auto r = std::make_shared<RunReader>(*file);
    readers[name] = {r, st.st_ino};
    return r;
  }

  std::vector<std::string> run_names() {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(runs_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (valid_run_name(name) && fs::is_regular_file(it->path() / "run.sqlite", ec))
        names.push_back(name);
      if (names.size() >= kMaxRuns) break;
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // The trials <runs_dir>/<sweep>.sweep/plan.toml lists (its [trials] table); 0 without one.
  int64_t sweep_trial_count(const std::string& sweep) {
    if (!valid_run_name(sweep)) return 0;
    std::ifstream in(track::sweep_dir(runs_dir, sweep) / "plan.toml");
    int64_t count = 0;
    bool trials = false;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line[0] == '[')
        trials = line.rfind("[trials]", 0) == 0;
      else if (trials && line.find(" = ") != std::string::npos)
        ++count;
    }
    return count;
  }

  // Runs a handler with the run's reader; unknown runs are 404, unreadable ones 500.
  template <typename F>
  void with_run(const httplib::Request& req, httplib::Response& res, F&& f) {
    const std::string name = req.matches[1];
    std::shared_ptr<RunReader> r;
    try {
      r = reader(name);
    } catch (const std::exception& e) {
      send_error(res, 500, e.what());
      return;
    }
    if (!r) {
      send_error(res, 404, "no run named '" + name + "' in the runs directory");
      return;
    }
    try {
      f(*r, name);
    } catch (const std::exception& e) {
      send_error(res, 500, e.what());
    }
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (options.token.empty()) return true;
    std::string given;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    if (given.empty() && req.has_param("token")) {
      given = req.get_param_value("token");
      // The page's own requests (scripts, API calls) then carry the cookie.
      if (constant_time_equal(given, options.token))
        res.set_header("Set-Cookie", std::string(kCookie) + "=" + options.token +
                                         "; Path=/; HttpOnly; SameSite=Strict");
    }
    if (given.empty()) given = cookie_value(req.get_header_value("Cookie"), kCookie);
    return constant_time_equal(given, options.token);
  }

  // Writes come from the dashboard's own page: a JSON body (a cross-site form cannot send one
  // without a CORS preflight, which this server never grants), an Origin, when the browser
  // sends one, naming this server, and a loopback peer or the token.
  bool write_allowed(const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
      send_error(res, 415, "send the annotations as JSON (Content-Type: application/json)");
      return false;
    }
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && origin != "http://" + req.get_header_value("Host")) {
      send_error(
          res, 403,
          "writes come from the dashboard's own page only (Origin " + origin + " is another site)");
      return false;
    }
    if (options.token.empty() && !is_loopback_host(req.remote_addr)) {
      send_error(res, 403, "writes need the dashboard on loopback or its token");
      return false;
    }
    return true;
  }

  void routes() {
    server.set_payload_max_length(kMaxBody);
    // One request per connection: httplib serves a connection on one worker thread for as long as
    // it is kept alive, so a browser's six idle keep-alive connections would starve the few
    // workers.
    server.set_keep_alive_max_count(1);
    server.set_read_timeout(5, 0);
    server.set_write_timeout(5, 0);
    server.set_tcp_nodelay(true);
    const int threads = std::max(options.threads, 1);
    server.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    server.set_default_headers({
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Cross-Origin-Resource-Policy", "same-origin"},
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
         "data:; "
         "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
    });

    const bool loopback = is_loopback_host(options.host);
    server.set_pre_routing_handler(
        [this, loopback](const httplib::Request& req, httplib::Response& res) {
          // Reads are GET; the one write is a run's tags and note (PUT .../annotations).
          const bool write = req.method == "PUT" && is_annotations_path(req.path);
          if (req.method != "GET" && req.method != "HEAD" && !write) {
            send_error(res, 405,
                       "the dashboard takes GET, and PUT on /api/runs/<run>/annotations only");
            return httplib::Server::HandlerResponse::Handled;
          }
          // A page on another site cannot reach a loopback server by a DNS name that resolves to
          // 127.0.0.1.
          if (loopback && !is_loopback_host(req.get_header_value("Host"))) {
            send_error(res, 403, "the Host header must name this machine's loopback address");
            return httplib::Server::HandlerResponse::Handled;
          }
          if (write && !write_allowed(req, res)) return httplib::Server::HandlerResponse::Handled;
          if (!authorized(req, res)) {
            send_error(
                res, 401,
                "a token is required: open the URL printed by trainscope (it carries ?token=...)");
            return httplib::Server::HandlerResponse::Handled;
          }
          return httplib::Server::HandlerResponse::Unhandled;
        });
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        send_error(res, res.status, res.status == 404 ? "not found" : "bad request");
    });

    // TRAINSCOPE_WEB_DIR=<checkout>/web serves the front end from disk, for working on it
    // without a rebuild; the embedded copy otherwise.
    const char* web_dir = std::getenv("TRAINSCOPE_WEB_DIR");
    auto asset = [web = std::string(web_dir ? web_dir : "")](const std::string& path,
                                                             httplib::Response& res) {
      const Asset* a = find_asset(path);
      if (!web.empty()) {
        // Files added since the build are served too, by their extension.
        const auto ends = [&](const char* ext) {
          const std::string e = ext;
          return path.size() > e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
        };
        const std::string mime = a != nullptr   ? std::string(a->mime)
                                 : ends(".js")  ? "text/javascript; charset=utf-8"
                                 : ends(".css") ? "text/css; charset=utf-8"
                                                : "";
        const fs::path file = path.rfind("vendor/", 0) == 0
                                  ? fs::path(web) / "node_modules/uplot/dist" / path.substr(7)
                                  : fs::path(web) / path;
        std::ifstream in(file, std::ios::binary);
        if (in && !mime.empty()) {
          std::ostringstream text;
          text << in.rdbuf();
          res.set_header("Cache-Control", "no-cache");
          res.set_content(text.str(), mime);
          return;
        }
      }
      if (a == nullptr) {
        send_error(res, 404, "not found");
        return;
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_content(std::string(a->content), std::string(a->mime));
    };
    server.Get("/", [asset](const httplib::Request&, httplib::Response& res) {
      asset("index.html", res);
    });
    server.Get(R"(/assets/([A-Za-z0-9_./-]+))",
               [asset](const httplib::Request& req, httplib::Response& res) {
                 const std::string path = req.matches[1];
                 if (path.find("..") != std::string::npos) return send_error(res, 404, "not found");
                 asset(path, res);
               });

    server.Get("/api/runs", [this](const httplib::Request&, httplib::Response& res) {
      nlohmann::json runs = nlohmann::json::array();
      for (const auto& name : run_names()) {
        try {
          if (auto r = reader(name)) runs.push_back(r->summary(name));
        } catch (const std::exception& e) {
          runs.push_back({{"name", name},
                          {"display_name", name},
                          {"status", "unreadable"},
                          {"stop_message", e.what()}});
        }
      }
      // A sweep's planned trial count (its plan beside the runs): the runs table and the
      // notifications tell a finished sweep from one whose later trials have not started.
      std::map<std::string, int64_t> planned;
      for (auto& run : runs) {
        if (!run.contains("sweep") || !run["sweep"].is_string()) continue;
        const std::string sweep = run["sweep"];
        if (!planned.count(sweep)) planned[sweep] = sweep_trial_count(sweep);
        if (planned[sweep] > 0) run["sweep_trials"] = planned[sweep];
      }
      send_json(res, {{"runs_dir", runs_dir.string()}, {"runs", runs}});
    });
    server.Get(R"(/api/runs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      with_run(req, res,
               [&](RunReader& r, const std::string& name) { send_json(res, r.detail(name)); });
    });
    server.Get(R"(/api/runs/([^/]+)/findings)", [this](const httplib::Request& req,
                                                       httplib::Response& res) {
      with_run(req, res, [&](RunReader& r, const std::string&) { send_json(res, r.findings()); });
    });
    server.Get(R"(/api/runs/([^/]+)/version)", [this](const httplib::Request& req,
                                                      httplib::Response& res) {
      with_run(req, res, [&](RunReader& r, const std::string&) { send_json(res, r.version()); });
    });
    server.Get(
        R"(/api/runs/([^/]+)/series)", [this](const httplib::Request& req, httplib::Response& res) {
          const std::string split = req.get_param_value("split"), tag = req.get_param_value("tag");
          if (tag.empty()) return send_error(res, 400, "give the series as ?split=train&tag=loss");
          int64_t points = kDefaultPoints, from = INT64_MIN, to = INT64_MAX;
          if (req.has_param("points") && !parse_int(req.get_param_value("points"), points))
            return send_error(res, 400, "points must be an integer");
          if (req.has_param("from") && !parse_int(req.get_param_value("from"), from))
            return send_error(res, 400, "from must be an integer step");
          if (req.has_param("to") && !parse_int(req.get_param_value("to"), to))
            return send_error(res, 400, "to must be an integer step");
          points = std::clamp<int64_t>(points, 10, kMaxPoints);
          with_run(req, res, [&](RunReader& r, const std::string&) {
            send_json(res, r.series(split, tag, static_cast<size_t>(points), from, to));
          });
        });
    server.Get(R"(/api/runs/([^/]+)/histograms)", [this](const httplib::Request& req,
                                                         httplib::Response& res) {
      with_run(req, res, [&](RunReader& r, const std::string&) { send_json(res, r.histograms()); });
    });
    server.Put(R"(/api/runs/([^/]+)/annotations)", [this](const httplib::Request& req,
                                                          httplib::Response& res) {
      const auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      track::RunAnnotations a;
      const bool shaped = body.is_object() &&
                          body.value("tags", nlohmann::json::array()).is_array() &&
                          body.value("note", nlohmann::json("")).is_string();
      if (shaped)
        for (const auto& t : body.value("tags", nlohmann::json::array())) {
          if (!t.is_string()) return send_error(res, 400, "tags must be strings, not " + t.dump());
          a.tags.push_back(t.get<std::string>());
        }
      if (!shaped)
        return send_error(
            res, 400,
            R"(expected {"tags": ["..."], "note": "..."}, got: )" + req.body.substr(0, 200));
      a.note = body.value("note", std::string());
      with_run(req, res, [&](RunReader& r, const std::string& name) {
        try {
          track::validate_annotations(a);
        } catch (const Error& e) {
          return send_error(res, 400, "run '" + name + "': " + e.what());
        }
        track::write_annotations(r.file(), a);  // a failure is the server's: 500
        send_json(res, {{"tags", a.tags}, {"note", a.note}});
      });
    });
    server.Get(
        R"(/api/runs/([^/]+)/csv)", [this](const httplib::Request& req, httplib::Response& res) {
          const std::string split = req.get_param_value("split"), tag = req.get_param_value("tag");
          with_run(req, res, [&](RunReader& r, const std::string& name) {
            auto text = r.csv(split, tag);
            if (!text)
              return send_error(res, 404, "run '" + name + "' has no series " + split + "/" + tag);
            // A file name from letters, digits, '-', '_' and '.' only: nothing to escape in the
            // header.
            std::string file = name + "-" + split + "-" + tag + ".csv";
            for (char& c : file)
              if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
                c = '_';
            res.set_header("Content-Disposition", "attachment; filename=\"" + file + "\"");
            res.set_header("Cache-Control", "no-store");
            res.set_content(std::move(*text), "text/csv; charset=utf-8");
          });
        });
  }
};

Dashboard::Dashboard(DashboardOptions options) : impl_(std::make_unique<Impl>()) {
  if (!is_loopback_host(options.host) && options.token.empty())
    throw Error("dashboard: --host " + options.host +
                " is reachable from other machines; give --token SECRET too (or keep the default "
                "127.0.0.1)");
  for (char c : options.token)
    if (static_cast<unsigned char>(c) <= 0x20 || c == ';' || c == ',' || c == '"' || c == '\\' ||
        c == 0x7f)
      throw Error(
          "dashboard: --token may hold printable characters only, without spaces, ';', ',', '\"' "
          "or '\\'");
  if (options.port < 0 || options.port > 65535)
    throw Error("dashboard: port " + std::to_string(options.port) +
                " is out of range (0 to 65535; 0: any free port)");
  std::error_code ec;
  impl_->runs_dir = fs::weakly_canonical(options.runs_dir, ec);
  if (ec) impl_->runs_dir = options.runs_dir;
  impl_->options = std::move(options);
  impl_->routes();
}

Dashboard::~Dashboard() { stop(); }

void Dashboard::start() {
  if (impl_->started) return;
  auto& o = impl_->options;
  int port = -1;
  if (o.port == 0) {
    port = impl_->server.bind_to_any_port(o.host);
  } else {
    const int tries = o.port_fallback ? 21 : 1;
    for (int i = 0; i < tries && port < 0; ++i)
      if (o.port + i <= 65535 && impl_->server.bind_to_port(o.host, o.port + i)) port = o.port + i;
  }
  if (port <= 0)
    throw Error("dashboard: cannot listen on " + o.host + ":" + std::to_string(o.port) +
                (o.port_fallback ? " (nor the next 20 ports)" : "") +
                "; choose another with --port N (0: any free port)");
  impl_->port = port;
  impl_->started = true;
  // The socket listens already: requests queue in its backlog until the thread accepts them.
  impl_->thread = std::thread([this] {
    impl_->server.listen_after_bind();
    impl_->done = true;
  });
  // stop() is a no-op until the accept loop runs; wait for it so that stopping right away works.
  for (int i = 0; i < 5000 && !impl_->server.is_running() && !impl_->done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Dashboard::wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Dashboard::stop() {
  if (!impl_ || !impl_->started) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->started = false;
}

int Dashboard::port() const { return impl_->port; }

std::string Dashboard::url() const {
  const std::string& h = impl_->options.host;
  std::string host = h == "0.0.0.0" || h == "::" ? "127.0.0.1" : h;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string u = "http://" + host + ":" + std::to_string(impl_->port) + "/";
  if (!impl_->options.token.empty()) u += "?token=" + impl_->options.token;
  return u;
}

}  // namespace trainscope::serve
