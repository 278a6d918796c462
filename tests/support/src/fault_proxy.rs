//! A TCP proxy that fails on command, for outage tests: while it passes, each connection is
//! relayed to the upstream; once told to refuse, it cuts every relayed connection (a client's
//! pooled keep-alive connection included) and closes each new one as soon as it is accepted, so
//! the client sees the service go away and come back, on the same address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on a loopback port of its own, in front of `upstream`.
pub struct FaultProxy {
    address: SocketAddr,
    passing: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    relayed: Arc<AtomicU64>,
    accepting: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts passing traffic to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let (passing, watching) = watch::channel(true);
        let refused = Arc::new(AtomicU64::new(0));
        let relayed = Arc::new(AtomicU64::new(0));
        let (counted_refused, counted_relayed) = (refused.clone(), relayed.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*watching.borrow() {
                    counted_refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                counted_relayed.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(client, upstream, watching.clone()));
            }
        });
        Self { address, passing, refused, relayed, accepting }
    }

    /// Starts passing traffic to the `http://host:port` service at `url`.
    pub async fn in_front_of(url: &str) -> Self {
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        let upstream = tokio::net::lookup_host(authority)
            .await
            .expect("the upstream's address")
            .next()
            .expect("one address");
        Self::start(upstream).await
    }

    /// The proxy's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Cuts every relayed connection and closes each new one on arrival.
    pub fn refuse(&self) {
        self.passing.send_replace(false);
    }

    /// Relays new connections again.
    pub fn pass(&self) {
        self.passing.send_replace(true);
    }

    /// Connections closed on arrival so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Connections relayed so far.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        // Cuts the relays still open.
        self.passing.send_replace(false);
    }
}

/// Relays one connection until either side closes it or the proxy starts refusing.
async fn relay(mut client: TcpStream, upstream: SocketAddr, mut passing: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    client.set_nodelay(true).ok();
    server.set_nodelay(true).ok();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = passing.wait_for(|passing| !passing) => {}
    }
}
