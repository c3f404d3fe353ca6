// code_interpreter through the official JS SDK, driven by tests/test_code_interpreter.py (which
// scripts the model): a streamed run's tool-call deltas and final messages, and a polled run.
// Prints what it saw as JSON. Usage: node code_interpreter.mjs '{"apiUrl", "azureEndpoint", "apiKey", "kind", "code"}'
import OpenAI, { AzureOpenAI } from "openai";

const given = JSON.parse(process.argv[2]);
const client =
  given.kind === "azure"
    ? new AzureOpenAI({ endpoint: given.azureEndpoint, apiKey: given.apiKey, apiVersion: "2025-03-01-preview", maxRetries: 0 })
    : new OpenAI({ baseURL: given.apiUrl, apiKey: given.apiKey, maxRetries: 0 });

const assistant = await client.beta.assistants.create({ model: "gpt-test", tools: [{ type: "code_interpreter" }] });
const seen = { created: [], input: "", outputs: [], done: [], texts: [] };
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: `run:${given.code}` }] });
const stream = client.beta.threads.runs
  .stream(thread.id, { assistant_id: assistant.id })
  .on("toolCallCreated", (call) => seen.created.push(call.type))
  .on("toolCallDelta", (delta) => {
    if (delta.type !== "code_interpreter") return;
    seen.input += delta.code_interpreter?.input ?? "";
    for (const output of delta.code_interpreter?.outputs ?? []) seen.outputs.push([output.index, output.type]);
  })
  .on("toolCallDone", (call) => seen.done.push(call.code_interpreter.input))
  .on("textDone", (text) => seen.texts.push(text.value));
seen.messages = await stream.finalMessages();
seen.run = await stream.finalRun();
seen.stored = (await client.beta.threads.messages.list(thread.id, { run_id: seen.run.id })).data;
const polled = await client.beta.threads.createAndRunPoll(
  { assistant_id: assistant.id, thread: { messages: [{ role: "user", content: `run:${given.code}` }] } },
  { pollIntervalMs: 100 },
);
seen.polled = polled.status;
console.log(JSON.stringify(seen));
