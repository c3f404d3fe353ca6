// The clients and the tool the JS tests share. Driven by tests/test_js_sdk.py, which starts the
// servers, scripts the model and sets ASSISTANTS_API_URL (the OpenAI client's base URL),
// ASSISTANTS_AZURE_ENDPOINT, ASSISTANTS_API_KEY and ASSISTANTS_API_VERSION. The model answers
// "Hello from JS" to a thread without tools, calls get_weather for Paris and Oslo when tools are
// offered, and "Done: <the last output>" once it has the outputs.
import OpenAI, { AzureOpenAI } from "openai";

const env = process.env;

export const clients = {
  openai: new OpenAI({ baseURL: env.ASSISTANTS_API_URL, apiKey: env.ASSISTANTS_API_KEY, maxRetries: 0 }),
  azure: new AzureOpenAI({
    endpoint: env.ASSISTANTS_AZURE_ENDPOINT,
    apiKey: env.ASSISTANTS_API_KEY,
    apiVersion: env.ASSISTANTS_API_VERSION,
    maxRetries: 0,
  }),
};

export const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
