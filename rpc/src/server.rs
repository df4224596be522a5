//! The server: jsonrpsee on one or two listeners (HTTP and WebSocket on each), the HTTP layers
//! (CORS, `GET /health`, `GET /metrics`, host filtering, JSON-RPC answers for refused
//! connections), and the background task that feeds polling filters.

use crate::{
    api::{ChainApi, Health},
    config::{MetricsRenderer, RpcConfig},
    error::RpcError,
    filters::{FilterManager, run_filter_feed},
    methods::{Ctx, build_module},
    pubsub::HexIdProvider,
};
use http::{HeaderValue, Method, StatusCode, header};
use jsonrpsee::{
    Methods,
    core::BoxError,
    server::{
        BatchRequestConfig, HttpBody, HttpRequest, HttpResponse, Server, ServerConfig,
        ServerHandle, middleware::http::HostFilterLayer,
    },
};
use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct RpcHandle {
    http_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    servers: Vec<ServerHandle>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl RpcHandle {
    /// The address the main (HTTP + WebSocket) listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address of the additional listener, if one was configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Stops accepting connections and closes the open ones.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        for server in &self.servers {
            let _ = server.stop();
        }
    }

    /// Completes when every listener has stopped.
    pub async fn stopped(mut self) {
        for server in std::mem::take(&mut self.servers) {
            server.stopped().await;
        }
    }
}

impl Drop for RpcHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Starts the server on the current tokio runtime: binds the listeners, registers every
/// method, and spawns the filter feed.
pub async fn start<A: ChainApi>(config: RpcConfig, api: Arc<A>) -> Result<RpcHandle, RpcError> {
    if config.max_concurrent_calls == 0 {
        return Err(RpcError::InvalidConfig(
            "max_concurrent_calls must be at least 1".into(),
        ));
    }
    let filters = Arc::new(FilterManager::new(
        config.filter_timeout,
        config.max_filters,
        config.max_filter_backlog,
    ));
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        filters: filters.clone(),
        calls: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_calls)),
        tip_cache: parking_lot::Mutex::new(None),
        config: config.clone(),
    });
    let methods: Methods = build_module(ctx)?.into();

    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let probes = Arc::new(ProbeState {
        node: api.clone(),
        metrics: config.metrics.clone(),
        filters: filters.clone(),
        max_connections: config.max_connections,
    });

    let mut servers = Vec::new();
    let (http_addr, handle) =
        listen(&config, config.http_addr, probes.clone(), methods.clone()).await?;
    servers.push(handle);
    let ws_addr = match config.ws_addr {
        Some(addr) => {
            let (bound, handle) = listen(&config, addr, probes, methods).await?;
            servers.push(handle);
            Some(bound)
        }
        None => None,
    };
    tokio::spawn(run_filter_feed(api, filters, shutdown_rx));
    tracing::info!(target: "rpc", %http_addr, ?ws_addr, "JSON-RPC server listening (HTTP and WebSocket)");
    Ok(RpcHandle {
        http_addr,
        ws_addr,
        servers,
        shutdown,
    })
}

async fn listen(
    config: &RpcConfig,
    addr: SocketAddr,
    probes: Arc<ProbeState>,
    methods: Methods,
) -> Result<(SocketAddr, ServerHandle), RpcError> {
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_body_size)
        .max_response_body_size(config.max_response_body_size)
        .max_connections(config.max_connections)
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_len))
        .set_message_buffer_capacity(config.ws_message_buffer.max(1))
        .set_id_provider(HexIdProvider)
        .build();
    let middleware = tower::ServiceBuilder::new()
        .layer(cors_layer(&config.cors_origins)?)
        .layer(ProbeLayer(probes))
        .layer(host_filter(&config.allowed_hosts)?);
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(middleware)
        .build(addr)
        .await
        .map_err(|source| RpcError::Bind { addr, source })?;
    let bound = server
        .local_addr()
        .map_err(|source| RpcError::Bind { addr, source })?;
    Ok((bound, server.start(methods)))
}

fn cors_layer(origins: &[String]) -> Result<CorsLayer, RpcError> {
    let layer = CorsLayer::new()
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    if origins.iter().any(|o| o == "*") {
        return Ok(layer.allow_origin(Any));
    }
    let list = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| RpcError::InvalidCorsOrigin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(layer.allow_origin(AllowOrigin::list(list)))
}

/// geth's vhosts ignore the port: a pattern without one matches any port.
fn host_filter(hosts: &[String]) -> Result<HostFilterLayer, RpcError> {
    if hosts.iter().any(|h| h == "*") {
        return Ok(HostFilterLayer::disable());
    }
    let patterns: Vec<String> = hosts
        .iter()
        .map(|h| {
            let after_brackets = h.rsplit(']').next().unwrap_or(h);
            if after_brackets.contains(':') {
                h.clone()
            } else {
                format!("{h}:*")
            }
        })
        .collect();
    HostFilterLayer::new(patterns.iter().map(String::as_str)).map_err(|e| RpcError::InvalidHost {
        host: hosts.join(","),
        reason: e.to_string(),
    })
}

/// What `GET /health` and `GET /metrics` read.
trait ProbeSource: Send + Sync {
    fn health(&self) -> Health;
    /// Sets the node-level gauges just before a scrape.
    fn update_gauges(&self);
}

impl<A: ChainApi> ProbeSource for A {
    fn health(&self) -> Health {
        ChainApi::health(self)
    }

    fn update_gauges(&self) {
        let (pending, queued) = self.pool_status();
        metrics::gauge!("chain_head_block").set(self.head_number() as f64);
        metrics::gauge!("chain_finalized_block").set(self.finalized_number() as f64);
        metrics::gauge!("txpool_pending").set(pending as f64);
        metrics::gauge!("txpool_queued").set(queued as f64);
        metrics::gauge!("p2p_peers").set(self.peer_count() as f64);
    }
}

struct ProbeState {
    node: Arc<dyn ProbeSource>,
    metrics: Option<MetricsRenderer>,
    filters: Arc<FilterManager>,
    max_connections: u32,
}

#[derive(Clone)]
struct ProbeLayer(Arc<ProbeState>);

impl<S> Layer<S> for ProbeLayer {
    type Service = Probes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Probes {
            inner,
            state: self.0.clone(),
        }
    }
}

/// Answers `GET /health` and `GET /metrics`, and turns jsonrpsee's plain-text "too many
/// connections" into a JSON-RPC error.
#[derive(Clone)]
struct Probes<S> {
    inner: S,
    state: Arc<ProbeState>,
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl ProbeState {
    fn health(&self) -> HttpResponse {
        let health = self.node.health();
        let body = serde_json::json!({
            "head": health.head_number,
            "ageMs": health.head_age_ms,
            "healthy": health.healthy,
        });
        let status = if health.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        response(status, "application/json", body.to_string())
    }

    fn metrics(&self) -> HttpResponse {
        match &self.metrics {
            Some(render) => {
                self.node.update_gauges();
                metrics::gauge!("rpc_filters_installed").set(self.filters.len() as f64);
                response(StatusCode::OK, "text/plain; version=0.0.4", render())
            }
            None => response(
                StatusCode::NOT_FOUND,
                "text/plain",
                "metrics are not enabled\n".to_owned(),
            ),
        }
    }
}

impl<S, B> Service<HttpRequest<B>> for Probes<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == Method::GET {
            match request.uri().path() {
                "/health" => {
                    let reply = self.state.health();
                    return Box::pin(async move { Ok(reply) });
                }
                "/metrics" => {
                    let reply = self.state.metrics();
                    return Box::pin(async move { Ok(reply) });
                }
                _ => {}
            }
        }
        let max_connections = self.state.max_connections;
        let future = self.inner.call(request);
        Box::pin(async move {
            let reply = future.await?;
            if reply.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(reply);
            }
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": crate::error::code::LIMIT_EXCEEDED,
                    "message": format!("too many connections (limit {max_connections}), try again later"),
                },
            });
            Ok(response(
                StatusCode::TOO_MANY_REQUESTS,
                "application/json",
                body.to_string(),
            ))
        })
    }
}
