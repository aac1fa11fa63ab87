#pragma once
// The dashboard: an HTTP server (JSON API and an embedded front end) over a directory of runs.
// It reads the runs' run.sqlite files and TensorBoard event files, and writes one thing: the
// tags and note a user gives a run. It never touches a live Trainer, so a training run beside it
// pays only for the disk reads of the requests.
//
// API (JSON unless said otherwise):
//   GET /api/runs                     every run: status, stop reason, best val metric, duration,
//                                     epochs, settings, final values, tags and note
//   GET /api/runs/<run>               meta, settings, series list, results, checkpoints
//   GET /api/runs/<run>/series?split=S&tag=T&points=N[&from=STEP&to=STEP]
//                                     one series (step, value, epoch, wall_time), downsampled to
//                                     at most N points (<= 20000), keeping each bucket's min and
//                                     max
//   GET /api/runs/<run>/histograms    weight and gradient histograms from the event files
//   GET /api/runs/<run>/findings      diagnostics findings with evidence and remedy
//   GET /api/runs/<run>/version       change counters, for live updates (polled)
//   GET /api/runs/<run>/csv?split=S&tag=T
//                                     text/csv download of a series, every point
//   PUT /api/runs/<run>/annotations   {"tags": [...], "note": "..."}: stored in the run's store.
//                                     Only with Content-Type application/json, from this
//                                     server's own page (Origin), and from loopback or with the
//                                     token.
// <run> is a run directory's name: one path component under the runs directory.
// TRAINSCOPE_WEB_DIR=<checkout>/web serves the front end from that directory instead of the
// embedded copy (for working on it without a rebuild).

#include <filesystem>
#include <memory>
#include <string>

namespace trainscope::serve {

struct DashboardOptions {
  std::filesystem::path runs_dir = "runs";
  // Loopback by default. Any other address requires `token`.
  std::string host = "127.0.0.1";
  // 0: any free port. When `port_fallback` is set and the port is taken, the next free one of
  // the following 20 is used (two runs side by side each get a dashboard).
  int port = 6150;
  bool port_fallback = false;
  // Required by every request when not empty: `Authorization: Bearer <token>`, `?token=<token>`
  // (which also sets a same-site cookie for the page's own requests) or that cookie.
  std::string token;
  // Worker threads of the server; few, so that a dashboard never competes with training.
  int threads = 2;
};

// Owns the server and its thread: start() binds and serves in the background; the destructor
// (or stop()) stops the server and joins the thread. Not copyable, not movable.
class Dashboard {
 public:
  // Validates the options; throws trainscope::Error for a non-loopback host without a token.
  explicit Dashboard(DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Binds the port and starts serving in a background thread; returns once requests are
  // accepted. Throws trainscope::Error naming host and port when it cannot bind.
  void start();
  // Blocks until stop() is called from another thread or a signal handler (see stop()).
  void wait();
  void stop();

  int port() const;
  // http://host:port/ (with ?token=... when a token is set)
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One self-contained HTML file for a run: its charts (downsampled), findings, test results and
// settings, with the chart library and data inlined; opens offline in any browser.
// Throws trainscope::Error when `run_dir` holds no run.sqlite.
std::string static_report(const std::filesystem::path& run_dir);

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

}  // namespace trainscope::serve
