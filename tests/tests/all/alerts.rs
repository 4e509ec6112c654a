//! Alert webhooks against a local receiver (a plain TCP server in a
//! thread): a dead-lettered job is posted, signed, and retried after a
//! 500; a queue's wait alert fires once when it crosses the threshold
//! (the test clock moves the wait), and again only after it went back
//! under.

use serde_json::{Value, json};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;
use wasmjob::alerts::{AlertEvent, Alerts, Delivery, SIGNATURE_HEADER, Webhook, signature};
use wasmjob::job::JobState;
use wasmjob::queue::QueueConfig;
use wasmjob::scheduler::check_waits_once;
use wasmjob_tests::HANG;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, eventually};

/// A request the receiver got: its signature header and body.
struct Received {
    signature: Option<String>,
    body: String,
}

/// Starts a receiver answering each request with the next of `statuses`
/// (then 200); returns its URL and the requests it gets.
fn receiver(statuses: &[u16]) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut statuses: VecDeque<u16> = statuses.iter().copied().collect();
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut signed) = (0, None);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.trim_end().split_once(": ").unwrap_or(("", ""));
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap();
                }
                if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
                    signed = Some(value.to_owned());
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = statuses.pop_front().unwrap_or(200);
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes());
            let body = String::from_utf8(body).unwrap();
            if sender
                .send(Received {
                    signature: signed,
                    body,
                })
                .is_err()
            {
                return;
            }
        }
    });
    (url, received)
}

/// The next request the receiver got; panics after [`HANG`].
async fn next(received: &mpsc::Receiver<Received>) -> Received {
    tokio::task::block_in_place(|| received.recv_timeout(HANG)).expect("a request within HANG")
}

fn hook(url: String, events: &[AlertEvent]) -> Webhook {
    Webhook {
        name: "ops".to_owned(),
        url,
        secret: Some("s3cret".to_owned()),
        events: events.iter().copied().collect(),
        queue_wait_ms: Some(60_000),
        queues: None,
    }
}

/// Retries come quickly in tests: the backoff is not what is tested.
fn quick() -> Delivery {
    Delivery {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_is_posted_signed_and_retried_after_a_500() {
    let (url, received) = receiver(&[500]);
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        ..QueueConfig::default()
    });
    let alerts = Alerts::start(vec![hook(url, &[AlertEvent::DeadLetter])], quick()).unwrap();
    host.queue.set_alerts(alerts.clone());
    let flaky = host.upload(guests::FLAKY).await;
    let mut job = host.job(&flaky, json!({"succeed_on": 9}));
    job.max_attempts = Some(1);
    let id = host.submit(job).await.id;
    host.start_workers();
    host.wait_for(id, JobState::Failed).await;

    let first = next(&received).await;
    let second = next(&received).await;
    assert_eq!(
        first.body, second.body,
        "the same alert, again after the 500"
    );
    for request in [&first, &second] {
        assert_eq!(
            request.signature.as_deref(),
            Some(signature("s3cret", request.body.as_bytes()).as_str())
        );
    }
    let body: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(body["alert"], "ops");
    assert_eq!(body["event"], "dead_letter");
    assert_eq!(body["job_id"], id);
    assert_eq!(body["queue"], "default");
    assert!(
        body["error"].as_str().unwrap().contains("on purpose"),
        "{body}"
    );
    eventually("the delivery is counted", || {
        alerts.stats().snapshot().delivered == 1
    })
    .await;
    let counts = alerts.stats().snapshot();
    assert_eq!((counts.retried, counts.failed, counts.dropped), (1, 0, 0));
    let metrics = host.queue.render_metrics().await.unwrap();
    for line in [
        "wasmjob_alerts_total{outcome=\"delivered\"} 1\n",
        "wasmjob_alerts_total{outcome=\"retried\"} 1\n",
        "wasmjob_alerts_total{outcome=\"failed\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line}{metrics}");
    }
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_wait_alert_fires_when_it_crosses_the_threshold_only() {
    let (url, received) = receiver(&[]);
    let host = Host::new(QueueConfig::default());
    let alerts = Alerts::start(vec![hook(url, &[AlertEvent::QueueWait])], quick()).unwrap();
    host.queue.set_alerts(alerts.clone());
    let hello = host.upload(guests::HELLO).await;
    let mut job = host.job(&hello, json!({"name": "waiting"}));
    job.queue = Some("emails".to_owned());
    let first = host.submit(job.clone()).await.id;

    assert_eq!(check_waits_once(&host.queue).await, 0, "just submitted");
    host.clock.advance(61_000);
    assert_eq!(check_waits_once(&host.queue).await, 1, "crossed");
    assert_eq!(
        check_waits_once(&host.queue).await,
        0,
        "still above: told once"
    );
    let body: Value = serde_json::from_str(&next(&received).await.body).unwrap();
    assert_eq!(body["event"], "queue_wait");
    assert_eq!(body["queue"], "emails");
    assert_eq!(body["threshold_ms"], 60_000);
    assert!(body["oldest_wait_ms"].as_i64().unwrap() > 60_000, "{body}");

    // Back under (nothing waits), then over again: told again.
    host.queue.cancel(first).await.unwrap();
    assert_eq!(check_waits_once(&host.queue).await, 0);
    host.submit(job).await;
    host.clock.advance(61_000);
    assert_eq!(check_waits_once(&host.queue).await, 1, "crossed again");
    next(&received).await;
    let queues: BTreeSet<String> = ["emails".to_owned()].into();
    let filtered = Webhook {
        queues: Some(queues),
        ..hook(
            "http://127.0.0.1:9/unused".to_owned(),
            &[AlertEvent::QueueWait],
        )
    };
    let other = Alerts::start(vec![filtered], quick()).unwrap();
    let default_queue = host.job(&hello, json!({"name": "elsewhere"}));
    host.submit(default_queue).await;
    host.clock.advance(61_000);
    let stats = host.queue.queues().await.unwrap();
    let now = wasmjob_tests::host::NowMs::now_ms(&host.clock);
    assert_eq!(
        other.check_waits(&stats, now),
        1,
        "emails only, not default"
    );
}
