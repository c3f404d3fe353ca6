// Vector stores with the official JS SDK, both clients: uploadAndPoll (it polls on status, with
// openai-poll-after-ms), a batch's uploadAndPoll, search, content, list by filter, detach, delete.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFoundError, toFile } from "openai";

import { clients } from "./clients.mjs";

for (const [name, client] of Object.entries(clients)) {
  test(`${name}: uploadAndPoll, a batch's uploadAndPoll, search, content, detach, delete`, async () => {
    const store = await client.vectorStores.create({ name: "js" });
    assert.equal(store.object, "vector_store");
    const file = await client.vectorStores.files.uploadAndPoll(
      store.id,
      await toFile(Buffer.from("Ocean tides are caused by the pull of the moon."), "tides.txt"),
    );
    assert.equal(file.status, "completed");
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(store.id, {
      files: [await toFile(Buffer.from("Honey bees dance to show where flowers are."), "bees.txt")],
      fileIds: [],
    });
    assert.equal(batch.status, "completed");
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
    const found = await client.vectorStores.search(store.id, { query: "what pulls the tides?" });
    assert.equal(found.data[0].file_id, file.id);
    const content = [];
    for await (const part of client.vectorStores.files.content(file.id, { vector_store_id: store.id })) {
      content.push(part.text);
    }
    assert.match(content.join(""), /moon/);
    const completed = [];
    for await (const f of client.vectorStores.files.list(store.id, { filter: "completed", limit: 1 })) {
      completed.push(f.id);
    }
    assert.equal(completed.length, 2);
    const detached = await client.vectorStores.files.delete(file.id, { vector_store_id: store.id });
    assert.deepEqual(detached, { id: file.id, object: "vector_store.file.deleted", deleted: true });
    await assert.rejects(client.vectorStores.files.retrieve(file.id, { vector_store_id: store.id }), (err) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.error.message, `No file found with id '${file.id}' in vector store '${store.id}'.`);
      return true;
    });
    const retrieved = await client.vectorStores.retrieve(store.id);
    assert.equal(retrieved.file_counts.total, 1);
    assert.equal((await client.vectorStores.delete(store.id)).deleted, true);
  });
}
