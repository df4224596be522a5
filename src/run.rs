//! Runs a [`Node`]: the block producer on its own thread, the RPC server on tokio, until
//! SIGINT or SIGTERM, then a graceful stop that finishes the block being built.

use crate::node::{Node, ProducedBlock};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// What to serve besides block production.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// RPC server settings.
    pub rpc: chain_rpc::RpcConfig,
    /// Separate Prometheus listener.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether this node produces blocks (it has the validator key).
    pub produce: bool,
    /// Print one line per block to stdout.
    pub print_blocks: bool,
}

/// Runs until a shutdown signal. Returns after the producer stopped and the database flushed.
pub fn run(
    node: &Node,
    options: &RunOptions,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chaind-rpc")
        .enable_all()
        .build()?;
    let shutdown = Arc::new(AtomicBool::new(false));
    // Before anything is served: a validator whose consensus files are corrupt must not start.
    let producer = if options.produce {
        Some(node.block_producer()?)
    } else {
        None
    };
    let producer = producer.map(|producer| {
        let shutdown = shutdown.clone();
        let print = options.print_blocks;
        std::thread::Builder::new()
            .name("chaind-producer".into())
            .spawn(move || {
                let result = producer.run(&shutdown, |block: &ProducedBlock| {
                    if print {
                        println!(
                            "block {} {} txs={} gas={} exec={:.1}ms total={:.1}ms",
                            block.number,
                            block.hash,
                            block.transactions,
                            block.gas_used,
                            block.execution_us as f64 / 1e3,
                            block.total_us as f64 / 1e3
                        );
                    }
                    tracing::info!(number = block.number, hash = %block.hash, txs = block.transactions, "committed block");
                });
                if let Err(error) = result {
                    tracing::error!("block production stopped: {error:#}");
                }
            })
            .expect("spawning the producer thread")
    });
    let result = runtime.block_on(async {
        let mut rpc = options.rpc.clone();
        if let Some(handle) = prometheus.clone() {
            rpc = rpc.with_prometheus(handle);
        }
        let server = chain_rpc::start(rpc, Arc::new(node.clone())).await?;
        tracing::info!(addr = %server.http_addr(), "JSON-RPC listening (HTTP and WebSocket)");
        if let (Some(addr), Some(handle)) = (options.metrics_addr, prometheus) {
            tokio::spawn(serve_metrics(addr, handle));
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.stop();
        server.stopped().await;
        anyhow::Ok(())
    });
    shutdown.store(true, Ordering::Relaxed);
    if let Some(producer) = producer {
        let _ = producer.join();
    }
    node.chain().db().flush()?;
    result
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve_metrics(addr: SocketAddr, handle: metrics_exporter_prometheus::PrometheusHandle) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%addr, "cannot listen for metrics: {error}");
            return;
        }
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let body = handle.render();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
