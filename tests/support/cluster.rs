//! A NATS cluster on loopback: three `nats-server` processes with JetStream, routed to each
//! other, each with its own client port, cluster port and store (reference §3.9).

use std::time::{Duration, Instant};

use jetstream_pubsub_host::nats_server::{NatsServer, ServerError, ServerOptions, free_port};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};

/// A running cluster; every node is killed by PID on drop.
pub struct Cluster {
    nodes: Vec<(String, NatsServer)>,
}

/// Distinct loopback ports that were free a moment ago.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = free_port().expect("a free port");
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// How many times a cluster start is tried again when a route port was taken.
const START_ATTEMPTS: usize = 5;

impl Cluster {
    /// Starts `size` nodes named `node1`.. in cluster `name`, routed to one another.
    ///
    /// Each node picks its own client port. The route ports must be known before any node
    /// starts (a JetStream cluster refuses to start without its routes), so they come from
    /// [`free_port`], which can race with another process: when a node finds its port
    /// taken, the nodes started so far are killed and the whole cluster starts again on new
    /// ports.
    pub fn start(name: &str, size: usize) -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start(name, size) {
                Ok(cluster) => return cluster,
                Err(err) if err.is_address_in_use() && attempt < START_ATTEMPTS => {
                    eprintln!("cluster {name}: a route port was taken ({err}); starting again");
                    attempt += 1;
                }
                Err(err) => panic!("cluster {name}: a node did not start: {err}"),
            }
        }
    }

    fn try_start(name: &str, size: usize) -> Result<Self, ServerError> {
        let cluster_ports = free_ports(size);
        let route = |port: &u16| format!("nats://127.0.0.1:{port}");
        let mut nodes = Vec::with_capacity(size);
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let node = format!("node{}", i + 1);
            let routes: Vec<String> = cluster_ports
                .iter()
                .filter(|port| *port != cluster_port)
                .map(route)
                .collect();
            // On an error, the nodes already started are killed as `nodes` drops.
            let server = ServerOptions::jetstream()
                .arg("-n")
                .arg(node.as_str())
                .arg("--cluster")
                .arg(route(cluster_port))
                .arg("--cluster_name")
                .arg(name)
                .arg("--routes")
                .arg(routes.join(","))
                .start()?;
            nodes.push((node, server));
        }
        Ok(Self { nodes })
    }

    /// Every node's client URL, comma-separated: what a user puts in `natsURL`.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|(_, server)| server.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URLs of the nodes still running.
    pub fn running_urls(&self) -> String {
        self.nodes
            .iter()
            .filter(|(_, server)| server.pid().is_some())
            .map(|(_, server)| server.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with server name `name` (`nodeN`).
    pub fn node_mut(&mut self, name: &str) -> &mut NatsServer {
        let found = self.nodes.iter_mut().find(|(node, _)| node == name);
        &mut found
            .unwrap_or_else(|| panic!("no cluster node named {name}"))
            .1
    }

    /// Creates a file stream with `replicas` replicas, retrying while the meta leader is
    /// elected (creation fails until then).
    pub async fn add_stream(&self, name: &str, subjects: &[&str], replicas: usize) {
        let spec = StreamSpec {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            storage: Storage::File,
            replicas,
        };
        let settings = super::settings(&self.urls()).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match provision::add_stream(&settings, &spec).await {
                Ok(_) => return,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("stream {name} not created yet ({err}); retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => panic!("stream {name} with {replicas} replicas: {err}"),
            }
        }
    }

    /// The server name (`nodeN`) of the stream's RAFT leader, asked with a raw client.
    pub async fn stream_leader(&self, stream: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(leader) = self
                .stream_info(stream)
                .await
                .and_then(|info| info.cluster.and_then(|cluster| cluster.leader))
            {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} has no leader after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stream info from the running nodes, or None while it cannot be had.
    pub async fn stream_info(&self, stream: &str) -> Option<async_nats::jetstream::stream::Info> {
        let urls = self.running_urls();
        let urls: Vec<&str> = urls.split(',').collect();
        let client = async_nats::connect(urls.as_slice()).await.ok()?;
        let jetstream = async_nats::jetstream::new(client);
        let mut handle = jetstream.get_stream(stream).await.ok()?;
        handle.info().await.ok().cloned()
    }
}
