//! Syslog: the RFC 5424 form over UDP, TCP (octet-counted) and a Unix socket, checked by our own
//! listeners; and a real rsyslog (started by the service harness) that must parse what we send,
//! with the right priority, timestamp, app name, message id and structured data.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use infra_log::{LogAggregator, SyslogSink, TraceContext, set_trace_context, warn};

#[test]
fn udp_tcp_and_unix_carry_rfc5424_messages() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = infra_testkit::temp_dir();
    let unix_path = dir.path().join("log.sock");
    let unix = std::os::unix::net::UnixDatagram::bind(&unix_path).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let logs = LogAggregator::builder("order-gateway")
        .sink(SyslogSink::udp(&udp.local_addr().unwrap().to_string()).unwrap().facility(16).unwrap())
        .sink(SyslogSink::tcp(&tcp.local_addr().unwrap().to_string()).unwrap())
        .sink(SyslogSink::unix(&unix_path).unwrap().app_name("gateway"))
        .build()
        .unwrap();
    {
        let _trace =
            set_trace_context(TraceContext::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, 0x00f0_67aa_0ba9_02b7, 1));
        warn!(logs, "orders", "rejected\nby risk", reason = "limit \"hard\"]", qty = 10);
    }
    assert!(logs.flush());

    let mut datagram = [0u8; 2048];
    let n = udp.recv(&mut datagram).unwrap();
    let message = std::str::from_utf8(&datagram[..n]).unwrap();
    // local0 (16) * 8 + warning (4) = 132.
    assert!(message.starts_with("<132>1 "), "{message}");
    let parts: Vec<&str> = message.splitn(8, ' ').collect();
    assert_eq!(parts[3], "order-gateway");
    assert_eq!(parts[4], std::process::id().to_string());
    assert_eq!(parts[5], "orders");
    assert!(parts[1].ends_with('Z') && parts[1].len() == 27, "RFC 3339 with microseconds: {}", parts[1]);
    assert!(message.contains(
        "[trace@32473 trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\" span_id=\"00f067aa0ba902b7\" trace_flags=\"01\"]"
    ));
    assert!(message.contains(r#"[fields@32473 reason="limit \"hard\"\]" qty="10"]"#), "{message}");
    assert!(message.ends_with(" rejected\\nby risk"), "{message}");

    let (mut stream, _) = tcp.accept().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !received.contains(&b'>') || received.len() < 40 {
        let n = stream.read(&mut chunk).unwrap();
        received.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(received).unwrap();
    let (length, rest) = text.split_once(' ').unwrap();
    let length: usize = length.parse().unwrap();
    assert!(rest.len() >= length && rest.starts_with("<12>1 "), "octet-counted, user facility: {text}");

    let n = unix.recv(&mut datagram).unwrap();
    let message = std::str::from_utf8(&datagram[..n]).unwrap();
    assert_eq!(message.split(' ').nth(3), Some("gateway"));
}

#[test]
fn bad_addresses_and_facilities_are_refused() {
    assert!(SyslogSink::udp("not an address").is_err());
    assert!(SyslogSink::tcp("localhost").is_err(), "a port is needed");
    let error = SyslogSink::udp("127.0.0.1:514").unwrap().facility(24).unwrap_err();
    assert!(error.to_string().contains("0..=23"), "{error}");
}

#[test]
fn interop_rsyslog_parses_what_we_send() {
    let Some(rsyslogd) = infra_testkit::service_path(infra_testkit::Service::Rsyslogd) else {
        return;
    };
    let dir = infra_testkit::temp_dir();
    let udp_port = infra_testkit::free_port().unwrap();
    let tcp_port = infra_testkit::free_port().unwrap();
    let out = dir.path().join("out.log");
    let config = format!(
        r#"global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="parsed" type="string" string="%pri%|%timereported:::date-rfc3339%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
if $app-name == "interop" then {{
  action(type="omfile" file="{out}" template="parsed")
}}
"#,
        dir = dir.path().display(),
        out = out.display()
    );
    let config_path = dir.path().join("rsyslog.conf");
    std::fs::write(&config_path, config).unwrap();
    let mut command = std::process::Command::new(rsyslogd);
    command.args(["-n", "-f"]).arg(&config_path).arg("-i").arg(dir.path().join("rsyslog.pid"));
    let mut daemon =
        infra_testkit::ServerProcess::spawn("rsyslogd", command, &dir.path().join("rsyslogd.log")).unwrap();
    infra_testkit::wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", tcp_port)).map(drop)
    })
    .unwrap_or_else(|e| panic!("rsyslogd did not listen: {e}\n{}", daemon.log_tail()));

    let logs = LogAggregator::builder("interop")
        .sink(SyslogSink::udp(&format!("127.0.0.1:{udp_port}")).unwrap())
        .sink(SyslogSink::tcp(&format!("127.0.0.1:{tcp_port}")).unwrap().facility(16).unwrap())
        .build()
        .unwrap();
    {
        let _trace = set_trace_context(TraceContext::new(0xabc, 0xdef, 1));
        warn!(logs, "risk", "order rejected", limit = "gross");
    }
    logs.error("fill lost", "venue", Some("socket closed"));
    assert!(logs.flush());

    let lines = infra_testkit::wait_until(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 4 { Ok(lines) } else { Err(format!("{} lines so far", lines.len())) }
    })
    .unwrap_or_else(|e| panic!("rsyslog wrote too little: {e}\n{}", daemon.log_tail()));
    daemon.stop(Duration::from_secs(5));

    let by = |pri: &str, msgid: &str| {
        lines.iter().find(|l| l.starts_with(&format!("{pri}|")) && l.split('|').nth(4) == Some(msgid)).cloned()
    };
    // UDP, facility user: warning 1*8+4 = 12, error 11; TCP, facility local0: 132 and 131.
    for (pri, msgid) in [("12", "risk"), ("11", "venue"), ("132", "risk"), ("131", "venue")] {
        let line = by(pri, msgid).unwrap_or_else(|| panic!("no <{pri}> {msgid} line in {lines:#?}"));
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[2], "interop", "app name: {line}");
        assert_eq!(fields[3], std::process::id().to_string(), "procid: {line}");
        assert!(fields[1].starts_with("20") && fields[1].contains('T'), "timestamp: {line}");
        if msgid == "risk" {
            assert!(fields[5].contains(r#"[trace@32473 trace_id="00000000000000000000000000000abc" span_id="0000000000000def" trace_flags="01"]"#), "{line}");
            assert!(fields[5].contains(r#"[fields@32473 limit="gross"]"#), "{line}");
            assert_eq!(fields[6], "order rejected");
        } else {
            assert_eq!(fields[5], r#"[fields@32473 error="socket closed"]"#, "{line}");
            assert_eq!(fields[6], "fill lost");
        }
    }
}
