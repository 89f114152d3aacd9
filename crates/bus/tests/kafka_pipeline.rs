//! The pipelined producer against a real Kafka-protocol broker (`KAFKA_BOOTSTRAP_SERVERS`;
//! scripts/kafka-up.sh starts one): every pipelined output arrives, an input's offset is stored
//! only after its outputs are acknowledged (a successor of the group resumes after them, not
//! before, not after), and a full queue waits and counts instead of dropping. Without a broker
//! these tests fail under CI (`CI`/`REQUIRE_INTEGRATION`) and otherwise say why they skip.

use std::collections::BTreeSet;
use std::time::Duration;

use autoscaler_bus::kafka::{KafkaBus, KafkaConfig};
use autoscaler_bus::{Bus, Outgoing, Subscription};

fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var_os("CI").is_some()
            || std::env::var_os("REQUIRE_INTEGRATION").is_some() =>
        {
            panic!("KAFKA_BOOTSTRAP_SERVERS is not set but CI/REQUIRE_INTEGRATION requires the Kafka tests (run scripts/kafka-up.sh)")
        }
        _ => {
            eprintln!("SKIPPED: KAFKA_BOOTSTRAP_SERVERS is not set (start a broker with scripts/kafka-up.sh)");
            None
        }
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

async fn next(
    sub: &mut Box<dyn Subscription>,
    within: Duration,
) -> Option<autoscaler_bus::Delivery> {
    match tokio::time::timeout(within, sub.recv()).await {
        Ok(Some(Ok(d))) => Some(d),
        Ok(Some(Err(e))) => panic!("receive failed: {e}"),
        Ok(None) | Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn pipelined_outputs_arrive_and_the_group_resumes_after_them() {
    let Some(bootstrap) = broker() else { return };
    let (inputs, outputs) = (unique("pipe-in"), unique("pipe-out"));
    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = 3;
    let bus = KafkaBus::new(cfg.clone()).unwrap();
    bus.ensure_topics(&[&inputs, &outputs]).await.unwrap();
    const N: usize = 300;
    for i in 0..N {
        bus.publish(Outgoing::new(
            &inputs,
            format!("svc-{}", i % 7),
            i.to_string().into_bytes(),
        ))
        .await
        .unwrap();
    }
    // A worker: each input causes two pipelined outputs, then is acknowledged.
    let group = unique("pipe-group");
    let mut sub = bus.subscribe(&inputs, &group).await.unwrap();
    let mut seen = 0;
    while seen < N {
        let d = next(&mut sub, Duration::from_secs(30))
            .await
            .expect("every input arrives");
        for copy in ["a", "b"] {
            let mut payload = d.payload.clone();
            payload.extend_from_slice(copy.as_bytes());
            bus.publish_pipelined(Outgoing::new(&outputs, d.key.clone(), payload))
                .await
                .unwrap();
        }
        sub.ack(&d).await.unwrap();
        seen += 1;
    }
    bus.flush(Duration::from_secs(30)).await.unwrap();
    sub.close().await.unwrap();
    drop(sub);
    let stats = bus.pipeline_stats();
    assert_eq!(stats.queued, 2 * N as u64);
    assert_eq!(stats.delivered, 2 * N as u64, "{stats:?}");
    assert_eq!(stats.watermark, 2 * N as u64, "{stats:?}");

    // Every output is on the broker.
    let mut reader = bus.reader(&outputs, true).unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 2 * N {
        let d = next(&mut reader, Duration::from_secs(30))
            .await
            .expect("every output arrives");
        got.insert(String::from_utf8(d.payload).unwrap());
    }
    for i in 0..N {
        assert!(
            got.contains(&format!("{i}a")) && got.contains(&format!("{i}b")),
            "{i}"
        );
    }

    // A successor in the group resumes after the last input: one more input is the first it
    // reads (nothing acknowledged is delivered again).
    let bus2 = KafkaBus::new(cfg).unwrap();
    let mut successor = bus2.subscribe(&inputs, &group).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    bus2.publish(Outgoing::new(&inputs, "svc-0", b"last".to_vec()))
        .await
        .unwrap();
    let d = next(&mut successor, Duration::from_secs(30))
        .await
        .expect("the new input arrives");
    assert_eq!(
        d.payload, b"last",
        "the successor starts after what was acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn a_full_queue_waits_and_counts_and_loses_nothing() {
    let Some(bootstrap) = broker() else { return };
    let topic = unique("pipe-full");
    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = 1;
    cfg.properties
        .insert("queue.buffering.max.messages".into(), "5".into());
    cfg.properties.insert("linger.ms".into(), "20".into());
    let bus = KafkaBus::new(cfg).unwrap();
    bus.ensure_topics(&[&topic]).await.unwrap();
    const N: usize = 200;
    for i in 0..N {
        bus.publish_pipelined(Outgoing::new(&topic, "k", i.to_string().into_bytes()))
            .await
            .unwrap();
    }
    bus.flush(Duration::from_secs(30)).await.unwrap();
    let stats = bus.pipeline_stats();
    assert!(
        stats.queue_full_waits > 0,
        "the queue of 5 filled: {stats:?}"
    );
    assert_eq!(stats.delivered, N as u64, "{stats:?}");
    let mut reader = bus.reader(&topic, true).unwrap();
    // One partition, one key: in order, every one.
    for i in 0..N {
        let d = next(&mut reader, Duration::from_secs(30))
            .await
            .expect("every message");
        assert_eq!(d.payload, i.to_string().into_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn an_input_whose_outputs_are_never_acknowledged_is_delivered_again() {
    let Some(bootstrap) = broker() else { return };
    let (inputs, outputs) = (unique("pipe-stuck-in"), unique("pipe-stuck-out"));
    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = 1;
    let good = KafkaBus::new(cfg.clone()).unwrap();
    good.ensure_topics(&[&inputs, &outputs]).await.unwrap();
    good.publish(Outgoing::new(&inputs, "svc", b"one".to_vec()))
        .await
        .unwrap();
    // A worker whose outputs can never be delivered: a topic name the broker refuses; each
    // attempt expires after 1 s and is sent again.
    let mut broken = cfg.clone();
    broken.delivery_timeout = Duration::from_secs(1);
    let worker = KafkaBus::new(broken).unwrap();
    let group = unique("pipe-stuck-group");
    let mut sub = worker.subscribe(&inputs, &group).await.unwrap();
    let d = next(&mut sub, Duration::from_secs(30))
        .await
        .expect("the input arrives");
    worker
        .publish_pipelined(Outgoing::new(
            format!("{outputs} no/such!topic"),
            "svc",
            b"out".to_vec(),
        ))
        .await
        .unwrap();
    sub.ack(&d).await.unwrap();
    // The failure reaches the retry path; the offset must stay unstored.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = worker.pipeline_stats();
    assert!(stats.redelivered > 0, "{stats:?}");
    assert_eq!(stats.watermark, 0, "{stats:?}");
    assert!(
        worker.flush(Duration::from_millis(200)).await.is_err(),
        "flush reports the stuck output"
    );
    sub.close().await.unwrap();
    drop(sub);
    drop(worker);
    // A successor of the group gets the input again.
    let mut successor = good.subscribe(&inputs, &group).await.unwrap();
    let again = next(&mut successor, Duration::from_secs(30))
        .await
        .expect("the input is delivered again");
    assert_eq!(again.payload, b"one");
    assert_eq!(again.offset, d.offset);
}
