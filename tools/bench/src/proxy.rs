//! A TCP proxy in front of Postgres that counts round trips: each time a client starts sending
//! after the server has answered (or for the first time) is one trip across the network, whatever
//! the statements, pings or protocol messages involved. Connection set-up is counted apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct Counters {
    round_trips: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    /// (round trips, connections opened) so far.
    pub fn read(&self) -> (u64, u64) {
        (self.round_trips.load(Ordering::SeqCst), self.connections.load(Ordering::SeqCst))
    }
}

pub struct CountingProxy {
    pub address: SocketAddr,
    pub counters: Arc<Counters>,
}

const NOBODY: u8 = 0;
const CLIENT: u8 = 1;
const SERVER: u8 = 2;

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        counters.connections.fetch_add(1, Ordering::SeqCst);
                        relay(client, server, counters).await;
                    }
                });
            }
        });
        Ok(Self { address, counters })
    }
}

async fn relay(client: TcpStream, server: TcpStream, counters: Arc<Counters>) {
    client.set_nodelay(true).ok();
    server.set_nodelay(true).ok();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Who spoke last on this connection.
    let last = AtomicU8::new(NOBODY);
    let up = pump(client_read, server_write, || {
        if last.swap(CLIENT, Ordering::SeqCst) != CLIENT {
            counters.round_trips.fetch_add(1, Ordering::SeqCst);
        }
    });
    let down = pump(server_read, client_write, || last.store(SERVER, Ordering::SeqCst));
    tokio::join!(up, down);
}

/// Copies one direction until it closes, calling `on_read` before forwarding each read.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, on_read: impl Fn()) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        on_read();
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    to.shutdown().await.ok();
}
