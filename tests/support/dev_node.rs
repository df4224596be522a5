//! A `chaind dev` child process for the tests that drive a real node over JSON-RPC: 200 ms
//! slots, free HTTP and WebSocket ports, the caller's data directory; killed when dropped.

use std::process::{Child, Command, Stdio};

/// A running `chaind dev`.
pub(crate) struct DevNode {
    process: Child,
    /// Its JSON-RPC HTTP port on 127.0.0.1.
    pub(crate) port: u16,
}

impl DevNode {
    /// Starts the node on `datadir`; it answers once its RPC server is up (the caller polls).
    pub(crate) fn start(datadir: &std::path::Path) -> Self {
        let port = free_port();
        let ws_port = free_port();
        let process = Command::new(env!("CARGO_BIN_EXE_chaind"))
            .args(["dev", "--block-time", "200ms"])
            .args(["--http.port", &port.to_string()])
            .args(["--ws.port", &ws_port.to_string()])
            .arg("--datadir")
            .arg(datadir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start chaind dev");
        Self { process, port }
    }

    /// Its JSON-RPC HTTP URL.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A TCP port free at the time of the call.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
