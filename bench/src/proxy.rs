//! A TCP proxy in front of Postgres that counts round trips: each time a client starts sending
//! after the server has answered (or for the first time) is one trip across the network, whatever
//! the statements, pings or protocol messages involved. Connection set-up is counted apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Who spoke last on this connection.
    let last = Arc::new(AtomicU8::new(NOBODY));
    let last_up = last.clone();
    let up = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if last_up.swap(CLIENT, Ordering::SeqCst) != CLIENT {
                counters.round_trips.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        server_write.shutdown().await.ok();
    };
    let down = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            last.store(SERVER, Ordering::SeqCst);
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        client_write.shutdown().await.ok();
    };
    tokio::join!(up, down);
}
