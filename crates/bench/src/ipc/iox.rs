//! `iceoryx2`: the outside reference for zero-copy IPC, through its safe public API only.
//!
//! The peer publishes on a publish-subscribe service of byte slices: it loans a sample in the
//! shared data segment and produces the object in place (the template copied in, then stamped,
//! like a game rendering into its buffer); when the message is due it writes the timestamped
//! header into the sample's first 32 bytes, sends it and wakes the receiver through an event
//! service. The receiver validates the object where it lies, without copying it.

use std::time::Duration;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample_mut::SampleMut;
use iceoryx2::service::port_factory::{event, publish_subscribe};

use super::msg::{now_ns, stamp, take_prepared, template, Header, HEADER_LEN};
use super::{Receive, Received, Setup, Transmit};

type PubSub = publish_subscribe::PortFactory<ipc::Service, [u8], ()>;
type Event = event::PortFactory<ipc::Service>;
type Sample = SampleMut<ipc::Service, [u8], ()>;

/// Both sides open the services with the same settings; the first creates them.
fn services(node: &Node<ipc::Service>, name: &str) -> Result<(PubSub, Event), String> {
    let data_name: ServiceName = format!("{name}/data")
        .as_str()
        .try_into()
        .map_err(|e| format!("service name {name}: {e:?}"))?;
    let event_name: ServiceName = format!("{name}/event")
        .as_str()
        .try_into()
        .map_err(|e| format!("service name {name}: {e:?}"))?;
    let data = node
        .service_builder(&data_name)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        // Lossless like every other transport here: a full subscriber buffer makes the
        // publisher wait instead of overwriting the oldest sample (iceoryx2's default).
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(4)
        .subscriber_max_borrowed_samples(1)
        .open_or_create()
        .map_err(|e| format!("publish-subscribe service: {e:?}"))?;
    let event = node
        .service_builder(&event_name)
        .event()
        .max_notifiers(1)
        .max_listeners(1)
        .disable_notifier_created_event()
        .disable_notifier_dropped_event()
        .disable_notifier_dead_event()
        .open_or_create()
        .map_err(|e| format!("event service: {e:?}"))?;
    Ok((data, event))
}

fn node() -> Result<Node<ipc::Service>, String> {
    // Keep iceoryx2 quiet unless something is really wrong: the bench owns stdout.
    set_log_level(LogLevel::Fatal);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))
}

/// Parent side: the subscriber and listener exist before the peer's publisher, so no sample
/// can be missed; the peer learns the service name from its arguments.
pub(crate) fn setup(size: usize) -> Result<Setup, String> {
    let name = format!(
        "crosscast-bench/ipc/{}/{}/{}",
        std::process::id(),
        size,
        now_ns()
    );
    let node = node()?;
    let (data, event) = services(&node, &name)?;
    let subscriber = data
        .subscriber_builder()
        .create()
        .map_err(|e| format!("subscriber: {e:?}"))?;
    let listener = event
        .listener_builder()
        .create()
        .map_err(|e| format!("listener: {e:?}"))?;
    let rx = IoxRx {
        subscriber,
        listener,
        size,
        _data: data,
        _event: event,
        _node: node,
    };
    let mut s = Setup::new(Box::new(rx), Vec::new());
    s.args = vec!["--service".into(), name];
    Ok(s)
}

struct IoxRx {
    // Field order is drop order: ports before their services, services before the node.
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    listener: Listener<ipc::Service>,
    size: usize,
    _data: PubSub,
    _event: Event,
    _node: Node<ipc::Service>,
}

impl Receive for IoxRx {
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(sample) = self
                .subscriber
                .receive()
                .map_err(|e| format!("receive: {e:?}"))?
            {
                let payload = sample.payload();
                let received_ns = now_ns();
                if payload.len() != HEADER_LEN + self.size {
                    return Err(format!(
                        "sample of {} bytes, expected {}",
                        payload.len(),
                        HEADER_LEN + self.size
                    ));
                }
                let (head, body) = payload.split_at(HEADER_LEN);
                let header = Header::decode(head)?;
                header.validate(expect_seq, body)?;
                let valid_ns = now_ns();
                return Ok(Received {
                    sent_ns: header.sent_ns,
                    received_ns,
                    io_thread_ns: None,
                    checked_from_ns: received_ns,
                    valid_ns,
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!("no message {expect_seq} within {timeout:?}"));
            }
            self.listener
                .timed_wait_one(left)
                .map_err(|e| format!("listener wait: {e:?}"))?;
        }
    }
}

/// Peer side: publisher and notifier on the services the parent created.
pub(crate) struct IoxTx {
    /// The loaned sample holding the prepared message, its number and checksum (first, so it
    /// goes back before the publisher it was loaned from).
    prepared: Option<(u32, u64, Sample)>,
    publisher: Publisher<ipc::Service, [u8], ()>,
    notifier: Notifier<ipc::Service>,
    template: Vec<u8>,
    _data: PubSub,
    _event: Event,
    _node: Node<ipc::Service>,
}

impl IoxTx {
    /// Opens the services named `name` and creates the publisher for `size`-byte objects.
    pub(crate) fn new(name: &str, size: usize) -> Result<IoxTx, String> {
        let node = node()?;
        let (data, event) = services(&node, name)?;
        let publisher = data
            .publisher_builder()
            .initial_max_slice_len(HEADER_LEN + size)
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| format!("publisher: {e:?}"))?;
        let notifier = event
            .notifier_builder()
            .create()
            .map_err(|e| format!("notifier: {e:?}"))?;
        let mut full = vec![0u8; HEADER_LEN];
        full.extend_from_slice(&template(size));
        Ok(IoxTx {
            publisher,
            notifier,
            template: full,
            prepared: None,
            _data: data,
            _event: event,
            _node: node,
        })
    }
}

impl Transmit for IoxTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        // A sample still loaned goes back to the publisher when dropped.
        self.prepared = None;
        let sample = self
            .publisher
            .loan_slice_uninit(self.template.len())
            .map_err(|e| format!("loan: {e:?}"))?;
        let mut sample = sample.write_from_slice(&self.template);
        let sum = stamp(&mut sample.payload_mut()[HEADER_LEN..], seq);
        self.prepared = Some((seq, sum, sample));
        Ok(())
    }

    fn send(&mut self, seq: u32, _due_ns: u64) -> Result<(), String> {
        let (sum, mut sample) = take_prepared(&mut self.prepared, seq)?;
        let (head, body) = sample.payload_mut().split_at_mut(HEADER_LEN);
        let header = Header {
            seq,
            len: body.len() as u64,
            sent_ns: now_ns(),
            sum,
        };
        head.copy_from_slice(&header.encode());
        sample.send().map_err(|e| format!("send: {e:?}"))?;
        self.notifier
            .notify()
            .map_err(|e| format!("notify: {e:?}"))?;
        Ok(())
    }
}
