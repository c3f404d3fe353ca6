// file_search through the official JS SDK, driven by tests/test_file_search.py (which makes the
// store and the assistant, and scripts the model): a streamed run's tool call, its step's results,
// the text's annotations, and the stored reply. Prints what it saw as JSON.
// Usage: node file_search.mjs '{"apiUrl", "azureEndpoint", "apiKey", "kind", "assistantId"}'
import OpenAI, { AzureOpenAI } from "openai";

const given = JSON.parse(process.argv[2]);
const client =
  given.kind === "azure"
    ? new AzureOpenAI({ endpoint: given.azureEndpoint, apiKey: given.apiKey, apiVersion: "2025-03-01-preview", maxRetries: 0 })
    : new OpenAI({ baseURL: given.apiUrl, apiKey: given.apiKey, maxRetries: 0 });

const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "moon and tides" }] });
const seen = { created: [] };
const stream = client.beta.threads.runs
  .stream(thread.id, { assistant_id: given.assistantId })
  .on("toolCallCreated", (call) => seen.created.push(call.type))
  .on("runStepDone", (step) => {
    if (step.type === "tool_calls") seen.stepResults = step.step_details.tool_calls[0].file_search.results;
  })
  .on("textDone", (text) => (seen.textDone = text));
await stream.finalMessages();
seen.run = await stream.finalRun();
seen.stored = (await client.beta.threads.messages.list(thread.id, { run_id: seen.run.id })).data[0];
console.log(JSON.stringify(seen));
