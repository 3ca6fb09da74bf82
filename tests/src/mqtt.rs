//! rumqttc clients (v3.1.1 and v5) with an event log, and the direct subscriber on the broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use rumqttc::QoS;

/// Default bound for a single expected MQTT event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// An append-only log with change notification: the event loop task appends, tests wait.
pub struct EventLog<T> {
    items: Mutex<Vec<T>>,
    notify: Notify,
}

impl<T: Clone> EventLog<T> {
    pub fn new() -> Arc<EventLog<T>> {
        Arc::new(EventLog { items: Mutex::new(Vec::new()), notify: Notify::new() })
    }

    pub fn push(&self, item: T) {
        self.items.lock().unwrap().push(item);
        self.notify.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Vec<T> {
        self.items.lock().unwrap().clone()
    }

    /// Waits for the first item at index >= `from` matching `pred`; returns it with its index.
    pub async fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Option<(usize, T)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let items = self.items.lock().unwrap();
                if let Some((i, t)) = items.iter().enumerate().skip(from).find(|(_, t)| pred(t)) {
                    return Some((i, t.clone()));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// What the event loop task records: an event, or the error that ended the connection.
#[derive(Clone, Debug)]
pub enum Ev<E> {
    Event(E),
    Closed(String),
}

macro_rules! client_impl {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name {
            pub client: AsyncClient,
            pub log: Arc<EventLog<Ev<Event>>>,
            task: JoinHandle<()>,
        }

        impl $name {
            /// Starts the event loop without waiting for anything.
            pub fn spawn(opts: MqttOptions) -> $name {
                let (client, mut eventloop) = AsyncClient::new(opts, 64);
                let log = EventLog::new();
                let task_log = log.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match eventloop.poll().await {
                            Ok(ev) => task_log.push(Ev::Event(ev)),
                            Err(e) => {
                                task_log.push(Ev::Closed(format!("{e} ({e:?})")));
                                // Never reconnect: a test sees exactly one connection.
                                return;
                            }
                        }
                    }
                });
                $name { client, log, task }
            }

            /// Connects and waits for a successful CONNACK.
            pub async fn connect(opts: MqttOptions) -> Result<$name> {
                let c = Self::spawn(opts);
                match c
                    .log
                    .wait_for(0, EVENT_TIMEOUT, |e| {
                        matches!(e, Ev::Closed(_) | Ev::Event(Event::Incoming(Packet::ConnAck(_))))
                    })
                    .await
                {
                    Some((_, Ev::Event(Event::Incoming(Packet::ConnAck(ack))))) => {
                        if ack.code != ConnectReturnCode::Success {
                            bail!("CONNACK refused: {:?}", ack.code);
                        }
                        Ok(c)
                    }
                    Some((_, Ev::Closed(e))) => bail!("connection failed before CONNACK: {e}"),
                    _ => bail!("no CONNACK within {EVENT_TIMEOUT:?}"),
                }
            }

            /// The error that closed the connection, waiting up to `timeout` for it.
            pub async fn wait_closed(&self, timeout: Duration) -> Option<String> {
                match self.log.wait_for(0, timeout, |e| matches!(e, Ev::Closed(_))).await {
                    Some((_, Ev::Closed(e))) => Some(e),
                    _ => None,
                }
            }

            /// Subscribes and waits for a successful SUBACK.
            pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<()> {
                let from = self.log.len();
                self.client.subscribe(filter, conv_qos(qos)).await?;
                let pkid = match self
                    .log
                    .wait_for(from, EVENT_TIMEOUT, |e| {
                        matches!(e, Ev::Closed(_) | Ev::Event(Event::Outgoing(Outgoing::Subscribe(_))))
                    })
                    .await
                {
                    Some((_, Ev::Event(Event::Outgoing(Outgoing::Subscribe(p))))) => p,
                    Some((_, Ev::Closed(e))) => bail!("connection closed before SUBSCRIBE went out: {e}"),
                    _ => bail!("SUBSCRIBE not sent within {EVENT_TIMEOUT:?}"),
                };
                match self
                    .log
                    .wait_for(from, EVENT_TIMEOUT, |e| match e {
                        Ev::Closed(_) => true,
                        Ev::Event(Event::Incoming(Packet::SubAck(a))) => a.pkid == pkid,
                        _ => false,
                    })
                    .await
                {
                    Some((_, Ev::Event(Event::Incoming(Packet::SubAck(a))))) => {
                        if a.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                            Ok(())
                        } else {
                            bail!("SUBACK refused {filter}: {:?}", a.return_codes)
                        }
                    }
                    Some((_, Ev::Closed(e))) => bail!("connection closed before SUBACK: {e}"),
                    _ => bail!("no SUBACK for {filter} within {EVENT_TIMEOUT:?}"),
                }
            }

            /// Publishes and, for QoS 1/2, waits for PUBACK / PUBCOMP.
            pub async fn publish(
                &self,
                topic: &str,
                qos: QoS,
                retain: bool,
                payload: impl Into<Vec<u8>>,
            ) -> Result<()> {
                let from = self.log.len();
                self.client.publish(topic, conv_qos(qos), retain, payload.into()).await?;
                let pkid = match self
                    .log
                    .wait_for(from, EVENT_TIMEOUT, |e| {
                        matches!(e, Ev::Closed(_) | Ev::Event(Event::Outgoing(Outgoing::Publish(_))))
                    })
                    .await
                {
                    Some((_, Ev::Event(Event::Outgoing(Outgoing::Publish(p))))) => p,
                    Some((_, Ev::Closed(e))) => bail!("connection closed before PUBLISH went out: {e}"),
                    _ => bail!("PUBLISH not sent within {EVENT_TIMEOUT:?}"),
                };
                if qos == QoS::AtMostOnce {
                    return Ok(());
                }
                let found = self
                    .log
                    .wait_for(from, EVENT_TIMEOUT, |e| match e {
                        Ev::Closed(_) => true,
                        Ev::Event(Event::Incoming(Packet::PubAck(a))) => {
                            qos == QoS::AtLeastOnce && a.pkid == pkid
                        }
                        Ev::Event(Event::Incoming(Packet::PubComp(a))) => {
                            qos == QoS::ExactlyOnce && a.pkid == pkid
                        }
                        _ => false,
                    })
                    .await;
                match found {
                    Some((_, Ev::Closed(e))) => bail!("connection closed before PUBLISH was acked: {e}"),
                    Some(_) => Ok(()),
                    None => bail!("PUBLISH {topic} ({qos:?}) not acknowledged within {EVENT_TIMEOUT:?}"),
                }
            }

            /// All PUBLISH packets received so far.
            pub fn publishes(&self) -> Vec<Publish> {
                self.log
                    .snapshot()
                    .into_iter()
                    .filter_map(|e| match e {
                        Ev::Event(Event::Incoming(Packet::Publish(p))) => Some(p),
                        _ => None,
                    })
                    .collect()
            }

            /// Waits for an incoming PUBLISH matching `pred`.
            pub async fn recv_publish(
                &self,
                timeout: Duration,
                mut pred: impl FnMut(&Publish) -> bool,
            ) -> Result<Publish> {
                match self
                    .log
                    .wait_for(0, timeout, |e| match e {
                        Ev::Event(Event::Incoming(Packet::Publish(p))) => pred(p),
                        _ => false,
                    })
                    .await
                {
                    Some((_, Ev::Event(Event::Incoming(Packet::Publish(p))))) => Ok(p),
                    _ => Err(anyhow!(
                        "expected PUBLISH not received within {timeout:?}; got {} publishes, closed: {:?}",
                        self.publishes().len(),
                        self.log.snapshot().into_iter().find_map(|e| match e {
                            Ev::Closed(c) => Some(c),
                            _ => None,
                        })
                    )),
                }
            }

            /// Sends DISCONNECT and waits for the event loop to finish.
            pub async fn disconnect(self) {
                let _ = self.client.disconnect().await;
                let _ = self.wait_closed(Duration::from_secs(3)).await;
            }

            /// Drops the socket without DISCONNECT (abrupt close, the Will fires).
            pub async fn abort(mut self) {
                self.task.abort();
                let _ = (&mut self.task).await;
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.task.abort();
            }
        }
    };
}

/// MQTT 3.1.1 client (rumqttc).
pub mod v311 {
    use super::*;
    pub use rumqttc::{
        AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Outgoing, Packet, Publish,
        SubscribeReasonCode, TlsConfiguration, Transport,
    };

    client_impl!(Client, "A rumqttc MQTT 3.1.1 client with an event log.");

    fn conv_qos(q: QoS) -> QoS {
        q
    }

    /// Options for a client at 127.0.0.1 (as `localhost` for TLS) with large packet limits.
    pub fn options(id: &str, port: u16, tls: Option<Arc<rustls::ClientConfig>>) -> MqttOptions {
        let host = if tls.is_some() { crate::tls::LOCALHOST } else { "127.0.0.1" };
        let mut o = MqttOptions::new(id, host, port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        if let Some(cfg) = tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(cfg)));
        }
        o
    }
}

/// MQTT 5 client (rumqttc::v5).
pub mod v5 {
    use super::*;
    pub use rumqttc::v5::mqttbytes::v5::{
        ConnectReturnCode, DisconnectReasonCode, LastWill, Packet, Publish, SubscribeReasonCode,
    };
    pub use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    pub use rumqttc::{Outgoing, TlsConfiguration, Transport};

    client_impl!(Client, "A rumqttc MQTT 5 client with an event log.");

    /// rumqttc::v5 has its own QoS type.
    pub fn conv_qos(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
        match q {
            QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        }
    }

    pub fn options(id: &str, port: u16, tls: Option<Arc<rustls::ClientConfig>>) -> MqttOptions {
        let host = if tls.is_some() { crate::tls::LOCALHOST } else { "127.0.0.1" };
        let mut o = MqttOptions::new(id, host, port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(4 * 1024 * 1024));
        if let Some(cfg) = tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(cfg)));
        }
        o
    }

    /// The DISCONNECT packets received from the server.
    pub fn disconnects(c: &Client) -> Vec<DisconnectReasonCode> {
        c.log
            .snapshot()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Event(Event::Incoming(Packet::Disconnect(d))) => Some(d.reason_code),
                _ => None,
            })
            .collect()
    }
}

/// A message as the broker delivered it to the direct subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

const BARRIER_PREFIX: &str = "moat-e2e/barrier/";

/// A plaintext rumqttc client connected straight to the broker and subscribed to `#`:
/// records everything the broker accepted, so tests can assert what did (not) get through.
pub struct DirectSubscriber {
    client: v311::Client,
    barrier_seq: AtomicU64,
}

impl DirectSubscriber {
    pub async fn start(broker_port: u16) -> Result<DirectSubscriber> {
        static N: AtomicU64 = AtomicU64::new(0);
        let id = format!("e2e-direct-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let client = v311::Client::connect(v311::options(&id, broker_port, None)).await?;
        client.subscribe("#", QoS::ExactlyOnce).await?;
        Ok(DirectSubscriber { client, barrier_seq: AtomicU64::new(0) })
    }

    /// Everything received so far (barrier markers excluded).
    pub fn messages(&self) -> Vec<Received> {
        self.client
            .publishes()
            .into_iter()
            .filter(|p| !p.topic.starts_with(BARRIER_PREFIX))
            .map(|p| Received { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain })
            .collect()
    }

    /// Waits for a message on `topic` with `payload`.
    pub async fn wait_for(&self, topic: &str, payload: &[u8], timeout: Duration) -> Result<Received> {
        let p = self
            .client
            .recv_publish(timeout, |p| p.topic == topic && p.payload.as_ref() == payload)
            .await
            .map_err(|e| {
                anyhow!(
                    "broker never got {topic} ({} bytes): {e}; broker saw: {:?}",
                    payload.len(),
                    self.summary()
                )
            })?;
        Ok(Received { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain })
    }

    /// Round-trips a marker through the broker, so everything the broker received before
    /// this call has been delivered to this subscriber by the time it returns.
    pub async fn barrier(&self) -> Result<()> {
        let n = self.barrier_seq.fetch_add(1, Ordering::Relaxed);
        let topic = format!("{BARRIER_PREFIX}{n}");
        self.client.publish(&topic, QoS::AtLeastOnce, false, b"barrier".to_vec()).await?;
        self.client.recv_publish(EVENT_TIMEOUT, |p| p.topic == topic).await?;
        Ok(())
    }

    /// Asserts (after a barrier) that the broker delivered nothing on `#`.
    pub async fn assert_nothing(&self, context: &str) {
        self.barrier().await.expect("direct subscriber barrier");
        let got = self.messages();
        assert!(
            got.is_empty(),
            "{context}: the broker received messages it should not have: {:?}",
            self.summary()
        );
    }

    pub fn summary(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| format!("{} [{} bytes, {:?}, retain={}]", m.topic, m.payload.len(), m.qos, m.retain))
            .collect()
    }
}
