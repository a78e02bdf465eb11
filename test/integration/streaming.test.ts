// Streaming under client misbehaviour: a disconnect aborts the upstream request, and a client
// that reads nothing makes the gateway stop reading upstream instead of buffering.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockDeployment, startMockUpstreamProcess, startTestGateway, waitFor, type MockUpstreamProcess, type TestGateway } from './helpers/gateway.js';

function rawStreamRequest(port: number, model: string, authorization: string): Socket {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'stream please' }], stream: true });
  const socket = connect(port, '127.0.0.1');
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: ${authorization}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  return socket;
}

describe('streaming and client behaviour', () => {
  let upstream: MockUpstreamProcess;
  let gw: TestGateway;

  beforeAll(async () => {
    upstream = await startMockUpstreamProcess();
    gw = await startTestGateway({
      server: { stalledClientTimeoutMs: 60_000 },
      models: [
        { name: 'slow', deployments: [mockDeployment(upstream, { 'x-mock-tokens-per-second': '50', 'x-mock-completion-tokens': '1000' }, { maxOutputTokens: 100_000 })] },
        // About 40 MB of SSE as fast as the mock can write it.
        { name: 'firehose', deployments: [mockDeployment(upstream, { 'x-mock-completion-tokens': '200000', 'x-mock-tokens-per-second': '1000000' }, { maxOutputTokens: 1_000_000 })] },
      ],
    });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('aborts the upstream request when the client disconnects mid-stream', async () => {
    await upstream.reset();
    const socket = rawStreamRequest(gw.gateway.port, 'slow', gw.auth.authorization);
    let received = '';
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString();
        if (received.includes('"content":"quick "')) resolve();
      });
    });
    expect((await upstream.stats()).inFlight).toBe(1);
    socket.destroy();
    await waitFor(async () => (await upstream.stats()).aborted === 1, 3000);
    const stats = await upstream.stats();
    expect(stats.inFlight).toBe(0);
    expect(stats.completed).toBe(0);
  });

  it('pauses upstream for a client that reads nothing: memory stays bounded and upstream is not drained', async () => {
    await upstream.reset();
    global.gc?.();
    const before = process.memoryUsage();
    const socket = rawStreamRequest(gw.gateway.port, 'firehose', gw.auth.authorization);
    socket.pause(); // never read: the kernel buffers fill, then uWS reports backpressure
    await waitFor(async () => (await upstream.stats()).inFlight === 1, 3000);
    // Give the firehose time to fill every buffer on the way.
    await new Promise((r) => setTimeout(r, 1500));
    const after = process.memoryUsage();
    const stats = await upstream.stats();
    // Upstream must still be blocked mid-response, not finished into the gateway's memory.
    expect(stats.completed).toBe(0);
    expect(stats.inFlight).toBe(1);
    const grownBytes = after.rss - before.rss;
    expect(grownBytes).toBeLessThan(32 * 1024 * 1024);
    socket.destroy();
    await waitFor(async () => (await upstream.stats()).aborted === 1, 3000);
  });
});
