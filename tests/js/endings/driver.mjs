// The JS half of the endings matrix (tests/test_run_endings.py): one cell, one way, one client,
// with the official JS SDK; prints what its helpers ended with and what storage says afterwards,
// as JSON, for the Python side to check with the same rules as the Python SDK's.
// Usage: node driver.mjs '{"apiUrl", "azureEndpoint", "apiKey", "kind", "cell", "way"}'
import OpenAI, { AzureOpenAI } from "openai";

const given = JSON.parse(process.argv[2]);
const client =
  given.kind === "azure"
    ? new AzureOpenAI({
        endpoint: given.azureEndpoint,
        apiKey: given.apiKey,
        apiVersion: "2025-03-01-preview",
        maxRetries: 0,
      })
    : new OpenAI({ baseURL: given.apiUrl, apiKey: given.apiKey, maxRetries: 0 });
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const { cell, way } = given;
const seen = {
  events: [],
  callbacks: [],
  deltas: [""],
  texts_done: [],
  messages_done: [],
  steps_done: [],
  tool_calls_done: [],
  exceptions: [],
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Every AssistantStream event, recorded; a cancel or a nested submit where the cell says.
function listen(stream, threadId, nested) {
  let runId = null;
  let cancelled = false;
  const cancelOnce = () => {
    if (!cancelled && runId) {
      cancelled = true;
      nested.push(client.beta.threads.runs.cancel(runId, { thread_id: threadId }));
    }
  };
  const note = (name) => () => seen.callbacks.push(name);
  for (const name of ["connect", "messageCreated", "messageDelta", "runStepCreated", "runStepDelta", "toolCallCreated", "textCreated", "imageFileDone", "end"]) {
    stream.on(name, note(name));
  }
  stream.on("run", () => seen.callbacks.push("run"));
  stream.on("event", (event) => {
    seen.events.push(event.event);
    if (event.event === "thread.run.created") runId = event.data.id;
    if (event.event === "thread.run.requires_action" && cell === "submit") {
      const run = event.data;
      const inner = client.beta.threads.runs.submitToolOutputsStream(run.id, {
        thread_id: threadId,
        tool_outputs: run.required_action.submit_tool_outputs.tool_calls.map((c) => ({ tool_call_id: c.id, output: "18C" })),
      });
      listen(inner, threadId, nested);
      nested.push(
        (async () => {
          seen.nested = { final_messages: await inner.finalMessages(), final_run: await inner.finalRun() };
        })(),
      );
    }
  });
  stream.on("textDelta", (delta) => {
    seen.callbacks.push("textDelta");
    seen.deltas[seen.deltas.length - 1] += delta.value ?? "";
    if (cell === "cancel-text") cancelOnce();
  });
  stream.on("textDone", (text) => {
    seen.callbacks.push("textDone");
    seen.texts_done.push(text.value);
    seen.deltas.push("");
  });
  stream.on("messageDone", (message) => {
    seen.callbacks.push("messageDone");
    seen.messages_done.push(message);
  });
  stream.on("runStepDone", (step) => {
    seen.callbacks.push("runStepDone");
    seen.steps_done.push(step);
  });
  stream.on("toolCallDelta", (delta) => {
    seen.callbacks.push("toolCallDelta");
    if (cell === "cancel-args" && delta.function?.arguments) cancelOnce();
  });
  stream.on("toolCallDone", (call) => {
    seen.callbacks.push("toolCallDone");
    seen.tool_calls_done.push(call);
  });
  stream.on("error", (error) => seen.exceptions.push(String(error)));
}

async function streamed(assistantId, threadId, budget) {
  const nested = [];
  const stream = client.beta.threads.runs.stream(threadId, {
    assistant_id: assistantId,
    ...(budget ? { max_completion_tokens: budget } : {}),
  });
  listen(stream, threadId, nested);
  seen.final_messages = await stream.finalMessages();
  seen.final_run = await stream.finalRun();
  await Promise.all(nested);
  seen.callbacks = seen.callbacks.map((c) => (c === "end" ? "on_end" : c));
  if (cell === "cancel-action") await client.beta.threads.runs.cancel(seen.final_run.id, { thread_id: threadId });
  seen.deltas = seen.deltas.filter((d) => d);
}

async function cancelMidAnswer(threadId) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const runs = (await client.beta.threads.runs.list(threadId)).data;
    if (runs.length && runs[0].status === "in_progress") {
      if (cell === "cancel-args") {
        await sleep(500); // the scripted call stalls mid-arguments: any moment after is mid-call
        return client.beta.threads.runs.cancel(runs[0].id, { thread_id: threadId });
      }
      if ((await client.beta.threads.messages.list(threadId, { run_id: runs[0].id })).data.length) {
        return client.beta.threads.runs.cancel(runs[0].id, { thread_id: threadId });
      }
    }
    await sleep(50);
  }
  seen.exceptions.push("the run never began to answer");
}

async function polled(assistantId, threadId, budget) {
  const cancelling = cell === "cancel-text" || cell === "cancel-args" ? cancelMidAnswer(threadId) : null;
  let run = await client.beta.threads.runs.createAndPoll(
    threadId,
    { assistant_id: assistantId, ...(budget ? { max_completion_tokens: budget } : {}) },
    { pollIntervalMs: 100 },
  );
  await cancelling;
  if (cell === "cancel-action") await client.beta.threads.runs.cancel(run.id, { thread_id: threadId });
  if (cell === "submit" && run.status === "requires_action") {
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(
      run.id,
      {
        thread_id: threadId,
        tool_outputs: run.required_action.submit_tool_outputs.tool_calls.map((c) => ({ tool_call_id: c.id, output: "18C" })),
      },
      { pollIntervalMs: 100 },
    );
  }
  seen.final_run = run;
  seen.final_messages = (await client.beta.threads.messages.list(threadId, { run_id: run.id })).data;
}

async function settled(threadId, runId) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const run = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (!["queued", "in_progress", "cancelling"].includes(run.status) || Date.now() > deadline) return run;
    await sleep(50);
  }
}

const tools = ["cancel-args", "cancel-action", "submit"].includes(cell) ? [weather] : [];
const assistant = await client.beta.assistants.create({ model: "gpt-test", tools });
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: `cell:${cell}` }] });
const budget = cell === "length" ? 256 : null;
try {
  await (way === "stream" ? streamed : polled)(assistant.id, thread.id, budget);
} catch (error) {
  seen.exceptions.push(String(error?.stack ?? error));
  seen.final_run = seen.final_run ?? { id: (await client.beta.threads.runs.list(thread.id)).data[0]?.id };
  seen.final_messages = seen.final_messages ?? [];
}
const runId = seen.final_run.id;
seen.stored_run = await settled(thread.id, runId);
seen.stored_messages = (await client.beta.threads.messages.list(thread.id, { order: "asc" })).data;
seen.stored_steps = (await client.beta.threads.runs.steps.list(runId, { thread_id: thread.id, order: "asc" })).data;
console.log(JSON.stringify(seen));
