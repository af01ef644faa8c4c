//! The Toxiproxy client libraries drive the fault proxy unchanged: `toxiproxy-python` (PyPI) and
//! `toxiproxy-node-client` (npm), both installed under target/ by `cargo xtask services up`.

mod common;

use std::process::Command;

use common::echo_server;
use infra_chaos::ProxyServer;
use infra_testkit::Service;

/// Creates proxies, adds every toxic type, lists, reads, removes, disables and enables, populates,
/// resets and deletes, checking data through the proxy along the way.
const PYTHON_SCRIPT: &str = r#"
import socket, sys
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound

host, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
server = Toxiproxy()
server.update_api_consumer(host, port)
assert server.running()
assert server.version()

proxy = server.create(upstream=upstream, name="py_echo", listen="127.0.0.1:0")
assert proxy.enabled and proxy.name == "py_echo"
listen_host, listen_port = proxy.listen.rsplit(":", 1)

def exchange(payload=b"ping"):
    with socket.create_connection((listen_host, int(listen_port)), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while len(data) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

assert exchange() == b"ping"
assert "py_echo" in server.proxies()

toxics = [
    ("latency", "downstream", {"latency": 10, "jitter": 2}),
    ("bandwidth", "downstream", {"rate": 1000}),
    ("slow_close", "downstream", {"delay": 10}),
    ("timeout", "upstream", {"timeout": 0}),
    ("reset_peer", "downstream", {"timeout": 100}),
    ("slicer", "downstream", {"average_size": 10, "size_variation": 5, "delay": 10}),
    ("limit_data", "upstream", {"bytes": 1000}),
    ("http_status", "upstream", {"status": 503}),
    ("fail_first", "upstream", {"connections": 1}),
]
for kind, stream, attributes in toxics:
    proxy.add_toxic(type=kind, stream=stream, attributes=attributes, toxicity=1.0)
names = set(proxy.toxics().keys())
assert names == {f"{kind}_{stream}" for kind, stream, _ in toxics}, names
assert proxy.get_toxic("latency_downstream").attributes["latency"] == 10
assert proxy.get_toxic("slicer_downstream").attributes["average_size"] == 10
for name in names:
    assert proxy.destroy_toxic(name)
assert proxy.toxics() == {}

proxy.add_toxic(type="latency", attributes={"latency": 20})
assert exchange(b"slow") == b"slow"
proxy.destroy_toxic("latency_downstream")

proxy.disable()
try:
    exchange()
    raise SystemExit("a disabled proxy accepted a connection")
except OSError:
    pass
proxy.enable()
assert exchange() == b"ping"

try:
    proxy.add_toxic(type="teleport")
    raise SystemExit("an unknown toxic type was accepted")
except InvalidToxic:
    pass
try:
    server.get_proxy("py_echo").destroy_toxic("nope")
    raise SystemExit("removing a missing toxic succeeded")
except NotFound:
    pass

populated = server.populate([{"name": "py_pop", "upstream": upstream, "listen": "127.0.0.1:0"}])
assert len(populated) == 1 and "py_pop" in server.proxies()
proxy.add_toxic(type="latency", attributes={"latency": 5})
assert server.reset()
assert proxy.toxics() == {}
server.destroy(server.get_proxy("py_pop"))
server.destroy(proxy)
assert server.proxies() == {}
print("OK")
"#;

const NODE_SCRIPT: &str = r#"
const net = require("net");
const assert = require("assert");
const { Toxiproxy } = require("toxiproxy-node-client");

const [api, upstream] = process.argv.slice(2);

function exchange(listen, payload = "ping") {
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host, () => socket.write(payload));
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk;
      if (data.length >= payload.length) { socket.end(); resolve(data); }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(data));
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error("timeout")); });
  });
}

(async () => {
  const toxiproxy = new Toxiproxy(api);
  assert.ok((await toxiproxy.getVersion()).length > 0);
  const proxy = await toxiproxy.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream });
  assert.strictEqual(proxy.enabled, true);
  assert.strictEqual(await exchange(proxy.listen), "ping");
  const all = await toxiproxy.getAll();
  assert.ok(all.node_echo);
  assert.strictEqual((await toxiproxy.get("node_echo")).upstream, upstream);

  const kinds = [
    ["latency", "downstream", { latency: 10, jitter: 2 }],
    ["bandwidth", "downstream", { rate: 1000 }],
    ["slow_close", "downstream", { delay: 10 }],
    ["timeout", "upstream", { timeout: 0 }],
    ["reset_peer", "downstream", { timeout: 100 }],
    ["slicer", "downstream", { average_size: 10, size_variation: 5, delay: 10 }],
    ["limit_data", "upstream", { bytes: 1000 }],
    ["http_status", "upstream", { status: 503 }],
    ["fail_first", "upstream", { connections: 1 }],
  ];
  for (const [type, stream, attributes] of kinds) {
    const toxic = await proxy.addToxic({ type, stream, attributes, toxicity: 1, name: `${type}_${stream}` });
    assert.strictEqual(toxic.type, type);
    const read = await proxy.getToxic(`${type}_${stream}`);
    assert.deepStrictEqual(read.attributes[Object.keys(attributes)[0]], Object.values(attributes)[0]);
    const updated = await read.update({ attributes, toxicity: 0.5 });
    assert.strictEqual(updated.toxicity, 0.5);
    await updated.remove();
  }

  await proxy.addToxic({ type: "latency", attributes: { latency: 20 } });
  assert.strictEqual(await exchange(proxy.listen, "slow"), "slow");
  await (await proxy.getToxic("latency_downstream")).remove();

  const disabled = await proxy.update({ enabled: false });
  assert.strictEqual(disabled.enabled, false);
  await assert.rejects(exchange(proxy.listen));
  const enabled = await proxy.update({ enabled: true });
  assert.strictEqual(await exchange(enabled.listen), "ping");

  await assert.rejects(proxy.addToxic({ type: "teleport", attributes: {} }));
  await assert.rejects(toxiproxy.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream }));

  const populated = await toxiproxy.populate([{ name: "node_pop", listen: "127.0.0.1:0", upstream }]);
  assert.ok(populated.node_pop);
  await proxy.addToxic({ type: "latency", attributes: { latency: 5 } });
  await toxiproxy.reset();
  await assert.rejects(proxy.getToxic("latency_downstream"));
  await populated.node_pop.remove();
  await proxy.remove();
  assert.deepStrictEqual(await toxiproxy.getAll(), {});
  console.log("OK");
})().catch((error) => { console.error(error); process.exit(1); });
"#;

/// Runs `command` off the runtime (the proxy it talks to runs on it) and checks it printed OK.
async fn run_client(mut command: Command) {
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("the client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("OK"),
        "client failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_toxiproxy_python_client_drives_the_proxy() {
    let Some(packages) = infra_testkit::service_path(Service::PythonToxiproxyClient) else { return };
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let dir = infra_testkit::temp_dir();
    let script = dir.path().join("drive.py");
    std::fs::write(&script, PYTHON_SCRIPT).unwrap();
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg("127.0.0.1")
        .arg(server.api_addr().port().to_string())
        .arg(upstream.to_string())
        .env("PYTHONPATH", &packages);
    run_client(command).await;
    assert!(server.proxies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_toxiproxy_node_client_drives_the_proxy() {
    let Some(node_modules) = infra_testkit::service_path(Service::NodeToxiproxyClient) else { return };
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let dir = infra_testkit::temp_dir();
    let script = dir.path().join("drive.js");
    std::fs::write(&script, NODE_SCRIPT).unwrap();
    let mut command = Command::new("node");
    command
        .arg(&script)
        .arg(format!("http://{}", server.api_addr()))
        .arg(upstream.to_string())
        .env("NODE_PATH", &node_modules);
    run_client(command).await;
    assert!(server.proxies().is_empty());
}
