//! The EC2 actuator against moto's EC2 server (`scripts/moto-up.sh` starts one on 127.0.0.1 and
//! prints its endpoint; export it as `AUTOSCALER_MOTO_ENDPOINT`). Without it these tests print
//! SKIPPED, except under `CI=true` (or `REQUIRE_INTEGRATION`), where a missing endpoint fails
//! them.
//!
//! Throttling is tested through a small HTTP proxy on 127.0.0.1 in front of moto that answers
//! the first N requests with an EC2 error (HTTP 503 `RequestLimitExceeded` in EC2's XML error
//! format, or another code) and forwards the rest.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoscaler_nodes::ec2::{TAG_CLUSTER, TAG_MANAGED};
use autoscaler_nodes::{
    Ec2Actuator, Ec2Error, Ec2Settings, ErrorClass, LaunchRequest, LaunchSource, RetryPolicy,
    SwarmJoin,
};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::InstanceAttributeName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

const PLANTED_TOKEN: &str = "SWMTKN-1-0plantedsecret0do0not0log0-7f3a9c2e1b";
const MANAGER: &str = "10.20.30.40:2377";

/// moto's endpoint, or `None` (SKIPPED printed) when it is not set outside CI.
fn moto_endpoint(test: &str) -> Option<String> {
    match std::env::var("AUTOSCALER_MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => {
            let url = url.trim().trim_end_matches('/').to_string();
            assert!(
                url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
                "AUTOSCALER_MOTO_ENDPOINT must be on 127.0.0.1, got {url}"
            );
            Some(url)
        }
        _ => {
            let reason = "AUTOSCALER_MOTO_ENDPOINT is not set (start moto with scripts/moto-up.sh)";
            let required = std::env::var("CI").as_deref() == Ok("true")
                || std::env::var_os("REQUIRE_INTEGRATION").is_some_and(|v| !v.is_empty());
            if required {
                panic!("{test}: {reason}, and CI=true (or REQUIRE_INTEGRATION) requires it");
            }
            // Straight to stderr, not `eprintln!`: the harness captures that, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            None
        }
    }
}

/// A cluster name no other test (or earlier run against the same moto) uses.
fn unique_cluster(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn settings(endpoint: &str, cluster: &str, retry: RetryPolicy) -> Ec2Settings {
    Ec2Settings {
        cluster: cluster.to_string(),
        region: Some("us-east-1".to_string()),
        endpoint_url: Some(endpoint.to_string()),
        credentials: Some(Credentials::new("testing", "testing", None, None, "moto")),
        retry,
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    }
}

async fn actuator(endpoint: &str, cluster: &str) -> Ec2Actuator {
    Ec2Actuator::connect(settings(endpoint, cluster, fast_retry(3)))
        .await
        .expect("connect to moto")
}

/// An AMI moto knows.
async fn some_image(ec2: &Ec2Actuator) -> String {
    let images = ec2
        .client()
        .describe_images()
        .send()
        .await
        .expect("DescribeImages");
    images
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_string))
        .expect("moto lists at least one AMI")
}

async fn spec_request(ec2: &Ec2Actuator, count: i32) -> LaunchRequest {
    LaunchRequest {
        source: LaunchSource::Spec {
            image_id: some_image(ec2).await,
            instance_type: "t3.micro".to_string(),
            subnet_id: None,
            security_group_ids: vec![],
            key_name: None,
        },
        count,
        join: SwarmJoin::new(PLANTED_TOKEN, MANAGER).unwrap(),
        extra_tags: vec![("Name".to_string(), "swarm-node".to_string())],
    }
}

async fn user_data_of(ec2: &Ec2Actuator, id: &str) -> String {
    let attr = ec2
        .client()
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .expect("DescribeInstanceAttribute");
    let b64 = attr
        .user_data()
        .and_then(|v| v.value())
        .expect("the instance has user-data");
    String::from_utf8(aws_smithy_types::base64::decode(b64).expect("base64 user-data")).unwrap()
}

async fn tags_of(ec2: &Ec2Actuator, id: &str) -> Vec<(String, String)> {
    let out = ec2
        .client()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("DescribeInstances");
    let instance = &out.reservations()[0].instances()[0];
    instance
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A `tracing` writer into a shared buffer, to read back what was logged.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log capture (TRACE, no colours), installed once.
fn capture_logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
    .clone()
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_launch_sets_tags_and_user_data_and_never_logs_the_token() {
    let Some(endpoint) =
        moto_endpoint("ec2_launch_sets_tags_and_user_data_and_never_logs_the_token")
    else {
        return;
    };
    // Every log line at TRACE, the SDK's included, of the calls inside the span below. (One
    // global subscriber: a thread-local one misses lines while other tests run in parallel.)
    let logs = capture_logs();
    let span = tracing::info_span!("leakcheck");
    let cluster = unique_cluster("launch");
    let ec2 = actuator(&endpoint, &cluster).await;
    let request = spec_request(&ec2, 2).await;
    let (launched, listed) = async {
        let launched = ec2.launch(&request).await.expect("launch");
        let listed = ec2.describe_ours().await.expect("describe_ours");
        (launched, listed)
    }
    .instrument(span)
    .await;
    assert_eq!(launched.len(), 2);
    assert_eq!(listed.len(), 2);
    // Reading the user-data back below is the test's own call, outside the span: the SDK logs
    // response bodies at TRACE.

    for instance in &launched {
        assert!(instance.id.starts_with("i-"), "{instance:?}");
        let tags = tags_of(&ec2, &instance.id).await;
        assert!(
            tags.contains(&(TAG_MANAGED.to_string(), "true".to_string())),
            "{tags:?}"
        );
        assert!(
            tags.contains(&(TAG_CLUSTER.to_string(), cluster.clone())),
            "{tags:?}"
        );
        assert!(
            tags.contains(&("Name".to_string(), "swarm-node".to_string())),
            "{tags:?}"
        );
        let script = user_data_of(&ec2, &instance.id).await;
        assert_eq!(script, request.join.user_data(&cluster));
        assert!(
            script.contains(&format!(
                "docker swarm join --token '{PLANTED_TOKEN}' '{MANAGER}'"
            )),
            "{script}"
        );
    }

    // The token went to EC2 (above) and nowhere else: not the logs, not Debug, not errors.
    let logged: String = logs
        .text()
        .lines()
        .filter(|l| l.contains("leakcheck"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        logged.contains("launching EC2 instances"),
        "the capture saw nothing:\n{logged}"
    );
    assert!(
        logged.contains("EC2.RunInstances"),
        "the SDK's own TRACE lines were captured"
    );
    assert!(logged.contains(&launched[0].id), "{logged}");
    let user_data_b64 = aws_smithy_types::base64::encode(request.join.user_data(&cluster));
    assert!(
        !logged.contains("0plantedsecret0"),
        "the join token was logged:\n{logged}"
    );
    // As sent in the form-encoded RunInstances body, too.
    let user_data_form = user_data_b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let leaks: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains(&user_data_b64) || l.contains(&user_data_form))
        .map(|l| &l[..l.len().min(300)])
        .collect();
    assert!(
        leaks.is_empty(),
        "the user-data was logged:\n{}",
        leaks.join("\n")
    );
    assert!(!format!("{request:?}").contains("0plantedsecret0"));
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_launch_from_a_launch_template() {
    let Some(endpoint) = moto_endpoint("ec2_launch_from_a_launch_template") else {
        return;
    };
    let cluster = unique_cluster("template");
    let ec2 = actuator(&endpoint, &cluster).await;
    let image = some_image(&ec2).await;
    let template = ec2
        .client()
        .create_launch_template()
        .launch_template_name(&cluster)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let template_id = template
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .expect("template id")
        .to_string();

    for id_or_name in [template_id, cluster.clone()] {
        let request = LaunchRequest {
            source: LaunchSource::Template {
                id_or_name: id_or_name.clone(),
                version: Some("$Latest".to_string()),
            },
            count: 1,
            join: SwarmJoin::new(PLANTED_TOKEN, MANAGER).unwrap(),
            extra_tags: vec![],
        };
        let launched = ec2.launch(&request).await.expect("launch from template");
        assert_eq!(launched.len(), 1, "{id_or_name}");
        let out = ec2
            .client()
            .describe_instances()
            .instance_ids(&launched[0].id)
            .send()
            .await
            .unwrap();
        let instance = &out.reservations()[0].instances()[0];
        assert_eq!(
            instance.instance_type().map(|t| t.as_str()),
            Some("t3.small"),
            "the template's instance type ({id_or_name})"
        );
        assert!(ec2.is_ours(instance));
        assert!(user_data_of(&ec2, &launched[0].id)
            .await
            .contains(PLANTED_TOKEN));
    }
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_describe_lists_only_ours() {
    let Some(endpoint) = moto_endpoint("ec2_describe_lists_only_ours") else {
        return;
    };
    let cluster = unique_cluster("describe");
    let ec2 = actuator(&endpoint, &cluster).await;
    let other = actuator(&endpoint, &unique_cluster("describe-other")).await;
    let ours = ec2.launch(&spec_request(&ec2, 2).await).await.unwrap();
    let theirs = other.launch(&spec_request(&other, 1).await).await.unwrap();
    let untagged = run_untagged(&ec2).await;

    let mut listed: Vec<String> = ec2
        .describe_ours()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    listed.sort();
    let mut expected: Vec<String> = ours.iter().map(|i| i.id.clone()).collect();
    expected.sort();
    assert_eq!(listed, expected, "only this cluster's instances");

    let described = ec2.describe(&expected).await.unwrap();
    assert_eq!(described.len(), 2);
    assert!(
        described
            .iter()
            .all(|i| i.state == "pending" || i.state == "running"),
        "{described:?}"
    );
    assert!(described.iter().all(|i| i.launch_time.is_some()));

    // Another cluster's instance and an untagged one are refused, even mixed with ours.
    for foreign in [&theirs[0].id, &untagged] {
        let ids = vec![expected[0].clone(), foreign.clone()];
        match ec2.describe(&ids).await {
            Err(Ec2Error::NotOurs { id, action, .. }) => {
                assert_eq!(&id, foreign);
                assert_eq!(action, "describe");
            }
            other => panic!("describe of {foreign} was not refused: {other:?}"),
        }
    }
}

/// An instance created directly, without our tags.
async fn run_untagged(ec2: &Ec2Actuator) -> String {
    let image = some_image(ec2).await;
    let out = ec2
        .client()
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances (untagged)");
    out.instances()[0].instance_id().unwrap().to_string()
}

async fn state_of(ec2: &Ec2Actuator, id: &str) -> String {
    let out = ec2
        .client()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap()
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_terminate_only_ours() {
    let Some(endpoint) = moto_endpoint("ec2_terminate_only_ours") else {
        return;
    };
    let cluster = unique_cluster("terminate");
    let ec2 = actuator(&endpoint, &cluster).await;
    let ours = ec2.launch(&spec_request(&ec2, 2).await).await.unwrap();
    let untagged = run_untagged(&ec2).await;
    // Tagged managed, but for another cluster.
    let other = actuator(&endpoint, &unique_cluster("terminate-other")).await;
    let theirs = other.launch(&spec_request(&other, 1).await).await.unwrap()[0]
        .id
        .clone();

    // A mixed request is refused whole: nothing is terminated, ours included.
    for foreign in [&untagged, &theirs] {
        let ids = vec![ours[0].id.clone(), foreign.clone()];
        let err = ec2
            .terminate(&ids)
            .await
            .expect_err("mixed terminate must be refused");
        assert!(
            matches!(&err, Ec2Error::NotOurs { id, action: "terminate", .. } if id == foreign),
            "{err}"
        );
        assert!(err.to_string().contains("refusing to terminate"), "{err}");
    }
    for id in [&ours[0].id, &ours[1].id, &untagged, &theirs] {
        let state = state_of(&ec2, id).await;
        assert!(state == "pending" || state == "running", "{id} is {state}");
    }
    // Alone, the untagged instance is refused too.
    assert!(matches!(
        ec2.terminate(std::slice::from_ref(&untagged)).await,
        Err(Ec2Error::NotOurs { .. })
    ));
    // An id EC2 does not know is not "ours" either.
    assert!(ec2
        .terminate(&["i-0123456789abcdef0".to_string()])
        .await
        .is_err());

    // Ours alone: terminated.
    let ids: Vec<String> = ours.iter().map(|i| i.id.clone()).collect();
    let changed = ec2.terminate(&ids).await.expect("terminate ours");
    assert_eq!(changed.len(), 2);
    for id in &ids {
        let state = state_of(&ec2, id).await;
        assert!(
            state == "shutting-down" || state == "terminated",
            "{id} is {state}"
        );
    }
    // The untagged and the other cluster's instances are untouched.
    for id in [&untagged, &theirs] {
        let state = state_of(&ec2, id).await;
        assert!(state == "pending" || state == "running", "{id} is {state}");
    }
}

/// A proxy on 127.0.0.1 in front of moto: the first `fail_first` requests get the EC2 error
/// `code` with HTTP `status`; the rest are forwarded. Counts every request.
struct FaultProxy {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn start(upstream: &str, fail_first: usize, code: &'static str, status: u16) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &upstream, &counter, fail_first, code, status).await;
                });
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request: head (with `Connection: close` forced) and body.
async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut out = String::new();
    for line in head.lines() {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut request = out.into_bytes();
    request.extend_from_slice(&body);
    Ok(Some(request))
}

async fn serve(
    mut conn: TcpStream,
    upstream: &str,
    counter: &AtomicUsize,
    fail_first: usize,
    code: &str,
    status: u16,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut conn).await? else {
        return Ok(());
    };
    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= fail_first {
        // EC2's XML error format.
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>injected by the test proxy (request {n})</Message></Error></Errors>\
             <RequestID>00000000-0000-0000-0000-{n:012}</RequestID></Response>"
        );
        let reason = if status == 503 {
            "Service Unavailable"
        } else {
            "Error"
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml;charset=UTF-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(response.as_bytes()).await?;
    } else {
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&request).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        conn.write_all(&response).await?;
    }
    conn.shutdown().await
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_throttling_is_retried_with_backoff() {
    let Some(endpoint) = moto_endpoint("ec2_throttling_is_retried_with_backoff") else {
        return;
    };
    let cluster = unique_cluster("throttle");
    let direct = actuator(&endpoint, &cluster).await;
    let launched = direct
        .launch(&spec_request(&direct, 1).await)
        .await
        .unwrap();

    // Two throttled answers, then moto: the third attempt succeeds.
    let proxy = FaultProxy::start(&endpoint, 2, "RequestLimitExceeded", 503).await;
    let ec2 = Ec2Actuator::connect(settings(&proxy.url, &cluster, fast_retry(4)))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let listed = ec2
        .describe_ours()
        .await
        .expect("retried past the throttling");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, launched[0].id);
    assert_eq!(
        proxy.requests(),
        3,
        "two throttled attempts and one that went through"
    );
    // Backoff: at least 3/4 of 20 ms + 40 ms between the attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(45),
        "{:?}",
        started.elapsed()
    );

    // Throttled past the bound: a Throttling error after max_attempts, source kept.
    let proxy = FaultProxy::start(&endpoint, 100, "RequestLimitExceeded", 503).await;
    let ec2 = Ec2Actuator::connect(settings(&proxy.url, &cluster, fast_retry(3)))
        .await
        .unwrap();
    let err = ec2.describe_ours().await.expect_err("throttled every time");
    match &err {
        Ec2Error::Api {
            class,
            code,
            attempts,
            operation,
            ..
        } => {
            assert_eq!(*class, ErrorClass::Throttling);
            assert_eq!(code.as_deref(), Some("RequestLimitExceeded"));
            assert_eq!(*attempts, 3);
            assert_eq!(*operation, "DescribeInstances");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        proxy.requests(),
        3,
        "bounded: exactly max_attempts requests"
    );
    let source = std::error::Error::source(&err).expect("the SDK error is kept as the source");
    assert!(!source.to_string().is_empty());

    // `Throttling` (the other code) and a capacity error are retried the same way.
    for code in ["Throttling", "InsufficientInstanceCapacity"] {
        let proxy = FaultProxy::start(&endpoint, 1, code, 503).await;
        let ec2 = Ec2Actuator::connect(settings(&proxy.url, &cluster, fast_retry(3)))
            .await
            .unwrap();
        assert_eq!(ec2.describe_ours().await.expect(code).len(), 1);
        assert_eq!(proxy.requests(), 2, "{code}: one failure, one retry");
    }
}

#[tokio::test]
#[ignore = "needs moto (scripts/moto-up.sh)"]
async fn ec2_auth_errors_are_final() {
    let Some(endpoint) = moto_endpoint("ec2_auth_errors_are_final") else {
        return;
    };
    let cluster = unique_cluster("auth");
    for code in ["AuthFailure", "UnauthorizedOperation"] {
        let proxy = FaultProxy::start(&endpoint, 1, code, 403).await;
        let ec2 = Ec2Actuator::connect(settings(&proxy.url, &cluster, fast_retry(5)))
            .await
            .unwrap();
        let err = ec2.describe_ours().await.expect_err(code);
        assert_eq!(err.class(), Some(ErrorClass::Auth), "{err}");
        assert!(matches!(err, Ec2Error::Api { attempts: 1, .. }), "{err}");
        assert_eq!(proxy.requests(), 1, "{code} is not retried");
        assert!(std::error::Error::source(&err).is_some());
    }
}
