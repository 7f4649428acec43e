//! The sandbox kit: serve a platform emulator on loopback and inject faults
//! into it deterministically. [`world`] seeds the people that every
//! sandbox draws its records from, so that records match across channels.

pub mod announce;
pub mod answer;
pub mod lifecycle;
pub mod market;
pub mod orders;
pub mod seed;
pub mod tokens;
pub mod world;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which faults a sandbox injects, as a share of requests (0.0 – 1.0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Answer with the platform's throttle code.
    pub throttle: f64,
    /// Answer with a platform "service busy" error (isp.*, -1).
    pub service_error: f64,
    /// Answer HTTP 500/502/503.
    pub http_5xx: f64,
    /// Answer slowly (after `slow_ms`), to trip client timeouts.
    pub slow: f64,
    /// How slow a slow answer is.
    pub slow_ms: u64,
    /// Answer with the platform's token-expired code.
    pub token_expired: f64,
    /// Corrupt one record of a page (the connector must quarantine it).
    pub malformed_record: f64,
    /// Seed of the fault sequence.
    pub seed: u64,
}

impl FaultConfig {
    /// A mix of every transient fault at `rate` each, for tests.
    pub fn chaos(rate: f64, seed: u64) -> Self {
        FaultConfig {
            throttle: rate,
            service_error: rate,
            http_5xx: rate,
            slow: rate / 2.0,
            slow_ms: 1_500,
            token_expired: rate,
            malformed_record: 0.0,
            seed,
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The platform's throttle answer.
    Throttle,
    /// The platform's busy / service error answer.
    ServiceError,
    /// An HTTP 5xx status.
    Http5xx(u16),
    /// A delayed answer.
    Slow(Duration),
    /// The token-expired answer.
    TokenExpired,
}

/// Draws faults from a seeded sequence. Never more than three faults in a
/// row, so a client that retries always gets through.
pub struct FaultInjector {
    cfg: FaultConfig,
    state: Mutex<(StdRng, u32)>,
}

impl FaultInjector {
    /// An injector for `cfg`.
    pub fn new(cfg: FaultConfig) -> Self {
        FaultInjector {
            cfg,
            state: Mutex::new((StdRng::seed_from_u64(cfg.seed), 0)),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &FaultConfig {
        &self.cfg
    }

    /// The fault for the next request, if any. `token_faults` says whether the
    /// endpoint takes a token (token-expired faults only go there).
    pub fn draw(&self, token_faults: bool) -> Option<Fault> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (rng, streak) = &mut *guard;
        if *streak >= 3 {
            *streak = 0;
            return None;
        }
        let x: f64 = rng.random();
        let c = &self.cfg;
        let mut edge = 0.0;
        let mut pick = |rate: f64| {
            edge += rate;
            x < edge
        };
        let fault = if pick(c.throttle) {
            Some(Fault::Throttle)
        } else if pick(c.service_error) {
            Some(Fault::ServiceError)
        } else if pick(c.http_5xx) {
            Some(Fault::Http5xx([500, 502, 503][rng.random_range(0..3)]))
        } else if pick(c.slow) {
            Some(Fault::Slow(Duration::from_millis(c.slow_ms)))
        } else if token_faults && pick(c.token_expired) {
            Some(Fault::TokenExpired)
        } else {
            None
        };
        *streak = if fault.is_some() { *streak + 1 } else { 0 };
        fault
    }

    /// Whether to corrupt a record of the next page.
    pub fn draw_malformed(&self) -> bool {
        if self.cfg.malformed_record <= 0.0 {
            return false;
        }
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.random::<f64>() < self.cfg.malformed_record
    }
}

/// A running sandbox server.
pub struct SandboxHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and wait for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Serve until the process ends (for `quanyu sandbox`).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serve `router` on `addr` (use port 0 for any free port) in the background.
pub async fn serve(router: axum::Router, addr: SocketAddr) -> std::io::Result<SandboxHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(SandboxHandle {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Loopback on any free port.
pub fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_deterministic_and_bounded() {
        let cfg = FaultConfig::chaos(0.3, 42);
        let a = FaultInjector::new(cfg);
        let b = FaultInjector::new(cfg);
        let seq_a: Vec<_> = (0..200).map(|_| a.draw(true)).collect();
        let seq_b: Vec<_> = (0..200).map(|_| b.draw(true)).collect();
        assert_eq!(seq_a, seq_b);
        let faults = seq_a.iter().filter(|f| f.is_some()).count();
        assert!(faults > 30 && faults < 170, "{faults}");
        let mut streak = 0;
        for f in &seq_a {
            streak = if f.is_some() { streak + 1 } else { 0 };
            assert!(streak <= 3);
        }
        let none = FaultInjector::new(FaultConfig::default());
        assert!((0..100).all(|_| none.draw(true).is_none()));
        assert!((0..100).all(|_| !none.draw_malformed()));
    }
}
