// Streamed runs with the official JS SDK's AssistantStream, with both clients, against the dev
// host (see clients.mjs for the settings and how the model answers).
import assert from "node:assert/strict";
import { test } from "node:test";

import { clients, weather } from "./clients.mjs";

for (const [name, client] of Object.entries(clients)) {
  test(`${name}: runs.stream delivers text deltas and the final messages`, async () => {
    const assistant = await client.beta.assistants.create({ model: "gpt-test" });
    const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "Say hello" }] });
    const deltas = [];
    const events = [];
    const stream = client.beta.threads.runs
      .stream(thread.id, { assistant_id: assistant.id })
      .on("event", (e) => events.push(e.event))
      .on("textDelta", (delta) => deltas.push(delta.value));
    const messages = await stream.finalMessages();
    const run = await stream.finalRun();
    assert.equal(run.status, "completed");
    assert.equal(deltas.join(""), "Hello from JS");
    assert.equal(messages.length, 1);
    assert.equal(messages[0].content[0].text.value, "Hello from JS");
    assert.deepEqual(events.slice(0, 3), ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]);
    assert.equal(events.at(-1), "thread.run.completed");
    const stored = (await client.beta.threads.messages.list(thread.id)).data[0];
    assert.equal(stored.content[0].text.value, "Hello from JS");
  });

  test(`${name}: tool calls stream, then submitToolOutputsStream completes`, async () => {
    const assistant = await client.beta.assistants.create({ model: "gpt-test", tools: [weather] });
    const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "Weather?" }] });
    const done = [];
    const first = client.beta.threads.runs
      .stream(thread.id, { assistant_id: assistant.id })
      .on("toolCallDone", (call) => done.push([call.function.name, JSON.parse(call.function.arguments).city]));
    const waiting = await first.finalRun();
    assert.equal(waiting.status, "requires_action");
    assert.deepEqual(done, [["get_weather", "Paris"], ["get_weather", "Oslo"]]);
    const calls = waiting.required_action.submit_tool_outputs.tool_calls;
    const second = client.beta.threads.runs.submitToolOutputsStream(waiting.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: "rain" })),
    });
    const messages = await second.finalMessages();
    assert.equal((await second.finalRun()).status, "completed");
    assert.equal(messages[0].content[0].text.value, "Done: rain");
  });

  test(`${name}: createAndRunStream`, async () => {
    const assistant = await client.beta.assistants.create({ model: "gpt-test" });
    const stream = client.beta.threads.createAndRunStream({
      assistant_id: assistant.id,
      thread: { messages: [{ role: "user", content: "Hi" }] },
    });
    const messages = await stream.finalMessages();
    assert.equal((await stream.finalRun()).status, "completed");
    assert.equal(messages[0].content[0].text.value, "Hello from JS");
  });
}
