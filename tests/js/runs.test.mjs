// Runs with the official JS SDK (`openai` from npm), polled, with both clients, against the
// dev host (see clients.mjs for the settings and how the model answers).
import assert from "node:assert/strict";
import { test } from "node:test";

import { clients, weather } from "./clients.mjs";

for (const [name, client] of Object.entries(clients)) {
  test(`${name}: createAndPoll answers, and the reply is in the thread`, async () => {
    const assistant = await client.beta.assistants.create({ model: "gpt-test", instructions: "Be brief." });
    const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "Say hello" }] });
    const started = Date.now();
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    assert.equal(run.status, "completed");
    assert.ok(Date.now() - started < 4000, "polling follows openai-poll-after-ms, not JS's 5 s default");
    assert.ok(run.usage.total_tokens > 0);
    const messages = await client.beta.threads.messages.list(thread.id);
    assert.equal(messages.data[0].role, "assistant");
    assert.equal(messages.data[0].content[0].text.value, "Hello from JS");
    assert.equal(messages.data[0].run_id, run.id);
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.deepEqual(
      steps.data.map((s) => [s.type, s.status]),
      [["message_creation", "completed"]],
    );
  });

  test(`${name}: function calls, submitToolOutputsAndPoll, steps`, async () => {
    const assistant = await client.beta.assistants.create({ model: "gpt-test", tools: [weather] });
    const thread = await client.beta.threads.create({
      messages: [{ role: "user", content: "Weather in Paris and Oslo?" }],
    });
    const waiting = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    assert.equal(waiting.status, "requires_action");
    const calls = waiting.required_action.submit_tool_outputs.tool_calls;
    assert.deepEqual(
      calls.map((c) => JSON.parse(c.function.arguments).city),
      ["Paris", "Oslo"],
    );
    const run = await client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: `sunny in ${JSON.parse(c.function.arguments).city}` })),
    });
    assert.equal(run.status, "completed");
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: "asc" });
    assert.deepEqual(
      steps.data.map((s) => [s.type, s.status]),
      [["tool_calls", "completed"], ["message_creation", "completed"]],
    );
    assert.deepEqual(
      steps.data[0].step_details.tool_calls.map((c) => c.function.output),
      ["sunny in Paris", "sunny in Oslo"],
    );
    const step = await client.beta.threads.runs.steps.retrieve(steps.data[1].id, {
      thread_id: thread.id,
      run_id: run.id,
    });
    assert.equal(step.id, steps.data[1].id);
    const reply = (await client.beta.threads.messages.list(thread.id)).data[0];
    assert.equal(reply.content[0].text.value, "Done: sunny in Oslo");
  });
}
