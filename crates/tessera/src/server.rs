//! Wiring: store, service, HTTP server and background jobs, started and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::ExposeSecret;
use tessera_core::Clock;
use tessera_service::{Service, ServiceConfig};
use tessera_store::{ConnectOptions, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;

/// How soon a key rotated elsewhere starts verifying (and signing) here.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How often the mail worker looks for messages that are due.
const MAIL_EVERY: Duration = Duration::from_millis(500);
/// How often the delivery worker looks for events to dispatch and attempts that are due.
const DELIVERY_EVERY: Duration = Duration::from_millis(500);
/// How often new activity entries are moved in a batch: often enough that the inbox, which
/// every read of the trail also scans, stays small; seldom enough that a batch writes each
/// user's index page once for many entries (every 250 ms cost about 5 % more per `PATCH`).
const ACTIVITY_MOVE_EVERY: Duration = Duration::from_secs(1);

/// Opens the configured store and brings its schema up to date.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = tessera_store::connect(&ConnectOptions {
        url: settings.store_url(),
        max_connections: settings.db_max_connections,
        acquire_timeout: Duration::from_millis(settings.db_acquire_timeout_ms.max(1)),
        sqlite_sync_full: settings.sqlite_sync_full,
        user_cache_max_age: Duration::from_millis(settings.sqlite_user_cache_ms),
    })
    .await
    .context("connecting to the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// The service; `background` is the runtime delivery attempts run on (none for the CLI).
pub async fn build_service(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    public_url: String,
    background: Option<tokio::runtime::Handle>,
) -> anyhow::Result<(Arc<Service>, Option<String>)> {
    let config = ServiceConfig {
        hash_concurrency: settings
            .hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        root_key: settings.root_key.as_ref().map(|k| k.expose_secret().to_owned()),
        allow_private_targets: settings.outbound.allow_private_targets,
        render_user: tessera_api::views::server_user_json,
        webhook_retry_schedule: settings.webhooks.retry_schedule_seconds.clone(),
        event_retention_seconds: i64::try_from(settings.webhooks.retention_seconds).unwrap_or(i64::MAX),
        webhook_timeout: Duration::from_secs(settings.webhooks.timeout_seconds.clamp(1, 60)),
        background,
        mail: settings.mail_config()?,
        relying_party: Arc::new(settings.relying_party(&public_url)?),
        console_idle: chrono::Duration::minutes(
            i64::try_from(settings.console_idle_minutes.clamp(1, 24 * 60)).unwrap_or(30),
        ),
        public_url,
    };
    let (service, generated) = Service::bootstrap(store, clock, config, tessera_auth::password::owasp_params())
        .await
        .map_err(|e| anyhow::Error::new(e).context("starting the service"))?;
    Ok((Arc::new(service), generated))
}

/// A running server and its jobs.
pub struct Running {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    /// The root key generated on this first start, if any (shown once).
    pub generated_root_key: Option<String>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    jobs: Vec<JoinHandle<()>>,
    background: Background,
}

/// A thread of its own, at a lower scheduling priority (nice 10), with a runtime of its own,
/// where the HTTP work of webhook deliveries runs: on a busy machine it takes what requests
/// leave, and falls behind rather than slows them. (The delivery rounds' database work stays
/// on the main runtime, whose reactor drives the database connections.)
struct Background {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> anyhow::Result<Self> {
        let (ready, handle) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("tessera-jobs".into()).spawn(move || {
            lower_priority();
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    let _ = runtime.block_on(stopped);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })?;
        let handle = handle.recv().context("the background thread did not start")??;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Nice 10 for the calling thread alone (on Linux, a thread's priority is its own).
#[cfg(target_os = "linux")]
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), 10) {
        tracing::warn!(error = %e, "could not lower the background thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl Running {
    /// Stops accepting connections, lets requests in flight finish (up to `grace`), stops jobs,
    /// closes the database (on SQLite, leaving the file whole: `Store::close`).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(grace, self.server).await;
        for job in self.jobs {
            job.abort();
        }
        // Bounded too: a request still holding a connection past the grace (a hung database)
        // must not keep the process from exiting; SQLite then recovers from its WAL next time.
        if tokio::time::timeout(grace, self.service.store.close()).await.is_err() {
            tracing::warn!("the database did not close in time");
        }
        // Its thread is joined: not on this runtime's threads.
        let background = self.background;
        let _ = tokio::task::spawn_blocking(move || drop(background)).await;
    }

    /// Resolves when the server stops by itself (an I/O error) or `stop` fires.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>, grace: Duration) {
        stop.await;
        tracing::info!("shutting down: finishing requests in flight");
        self.shutdown(grace).await;
        tracing::info!("stopped");
    }
}

/// Starts everything `tessera serve` runs.
pub async fn start(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let public_url =
        settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
    let store = open_store(settings).await?;
    let background = Background::start()?;
    let (service, generated_root_key) =
        build_service(settings, store, clock, public_url, Some(background.handle.clone())).await?;

    let (tx, rx) = watch::channel(false);
    let request_timeout = Duration::from_secs(settings.request_timeout_seconds.max(1));
    let app =
        tessera_api::router_with(Arc::clone(&service), &settings.compat, request_timeout, settings.trusted_proxies()?);
    let header_timeout = Duration::from_secs(settings.header_read_timeout_seconds.max(1));
    let server = tokio::spawn(serve(listener, app, header_timeout, rx.clone()));
    let purge_every = Duration::from_secs(settings.purge_interval_seconds.max(1));
    let jobs = vec![
        spawn_purge_job(Arc::clone(&service), purge_every, rx.clone()),
        spawn_key_reload_job(Arc::clone(&service), rx.clone()),
        spawn_activity_job(Arc::clone(&service), rx.clone()),
        spawn_delivery_job(Arc::clone(&service), rx.clone()),
        spawn_mail_job(Arc::clone(&service), rx),
    ];
    tracing::info!(%addr, backend = ?service.store.backend(), ready_in_ms = started.elapsed().as_millis() as u64, "tessera is ready");
    Ok(Running { addr, service, generated_root_key, shutdown: tx, server, jobs, background })
}

/// Serves HTTP/1 and HTTP/2 until `stop` fires, then waits for the connections in flight.
/// Written on hyper-util rather than `axum::serve` for one reason: a header-read timeout, so
/// that clients sending their headers slowly cannot hold connections open.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: log, breathe, go on.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let svc = app.clone().map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
                    req
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(svc))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut stopped => break,
        }
    }
    graceful.shutdown().await;
    Ok(())
}

/// Runs `job` every `every` until `stop` fires.
fn spawn_every<F, Fut>(every: Duration, mut stop: watch::Receiver<bool>, job: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = tick.tick() => job().await,
                () = &mut stopped => break,
            }
        }
    })
}

/// Erases accounts whose deletion grace period has passed, and unused images; forgets
/// delivered events, activity entries past their retention and ended brute-force windows. Every instance may run it: the
/// delete re-checks the due date in the statement, so none erases twice.
fn spawn_purge_job(service: Arc<Service>, every: Duration, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_every(every, stop, move || {
        let service = Arc::clone(&service);
        async move {
            match service.purge_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(erased = n, "purge job erased accounts"),
                Err(e) => tracing::error!(error = %e, "purge job failed"),
            }
            match service.purge_events().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "purge job forgot delivered events"),
                Err(e) => tracing::error!(error = %e, "purging events failed"),
            }
            match service.purge_activity().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "purge job forgot activity entries past their retention"),
                Err(e) => tracing::error!(error = %e, "purging activity failed"),
            }
            if let Err(e) = service.purge_limits().await {
                tracing::error!(error = %e, "forgetting ended brute-force windows failed");
            }
        }
    })
}

/// Moves new activity entries to where their reads' indexes are, in batches.
fn spawn_activity_job(service: Arc<Service>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_every(ACTIVITY_MOVE_EVERY, stop, move || {
        let service = Arc::clone(&service);
        async move {
            if let Err(e) = service.move_activity().await {
                tracing::error!(error = %e, "moving activity entries failed");
            }
        }
    })
}

/// Picks up signing keys rotated by `tessera keys rotate` or another instance.
fn spawn_key_reload_job(service: Arc<Service>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_every(KEY_RELOAD_EVERY, stop, move || {
        let service = Arc::clone(&service);
        async move {
            if let Err(e) = service.reload_keys().await {
                tracing::error!(error = %e, "reloading signing keys failed");
            }
        }
    })
}

/// Delivers events to webhook endpoints. Every instance runs it: the store's claims lock the
/// rows they take, so that instances share the work and no attempt is made twice.
fn spawn_delivery_job(service: Arc<Service>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_rounds(DELIVERY_EVERY, stop, service, "delivering events", |s| async move {
        s.deliver_due().await.map(|round| round.is_full())
    })
}

/// Sends queued mail. Every instance runs it, sharing the work as the delivery job does.
fn spawn_mail_job(service: Arc<Service>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_rounds(MAIL_EVERY, stop, service, "sending mail", |s| async move {
        s.send_due_mail().await.map(|round| round.is_full())
    })
}

/// Runs `round` every `every`, and again at once while it answers that it found a full batch.
fn spawn_rounds<F, Fut>(
    every: Duration,
    stop: watch::Receiver<bool>,
    service: Arc<Service>,
    what: &'static str,
    round: F,
) -> JoinHandle<()>
where
    F: Fn(Arc<Service>) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = tessera_service::Result<bool>> + Send,
{
    spawn_every(every, stop, move || {
        let service = Arc::clone(&service);
        async move {
            loop {
                match round(Arc::clone(&service)).await {
                    Ok(true) => tracing::debug!(what, "a full round; another at once"),
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "{what} failed");
                        break;
                    }
                }
            }
        }
    })
}
