// Files with the official JS SDK, both clients: toFile (Content-Length, octet-stream parts) and
// fs.createReadStream (the file part first, Transfer-Encoding: chunked), content, list, delete.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import { NotFoundError, toFile } from "openai";

import { clients } from "./clients.mjs";

for (const [name, client] of Object.entries(clients)) {
  test(`${name}: toFile upload, content, retrieve, delete then 404`, async () => {
    const file = await client.files.create({
      file: await toFile(Buffer.from("%PDF-1.4 from js"), "report.pdf"),
      purpose: "assistants",
    });
    assert.match(file.id, /^file-/);
    assert.equal(file.filename, "report.pdf");
    assert.equal(file.bytes, 16);
    assert.equal(file.status, "processed");
    const content = await client.files.content(file.id);
    assert.equal(await content.text(), "%PDF-1.4 from js");
    assert.equal(content.headers.get("content-type"), "application/pdf");
    assert.equal((await client.files.retrieve(file.id)).id, file.id);
    const deleted = await client.files.delete(file.id);
    assert.deepEqual(deleted, { id: file.id, object: "file", deleted: true });
    await assert.rejects(client.files.retrieve(file.id), (err) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.error.message, `No such File object: ${file.id}`);
      return true;
    });
  });

  test(`${name}: fs.createReadStream upload of a 2 MB file, listed by purpose`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "files-js-"));
    const where = path.join(dir, "data.bin");
    const data = randomBytes(2 * 1024 * 1024 + 7);
    fs.writeFileSync(where, data);
    const file = await client.files.create({ file: fs.createReadStream(where), purpose: "user_data" });
    assert.equal(file.filename, "data.bin");
    assert.equal(file.bytes, data.length);
    const content = Buffer.from(await (await client.files.content(file.id)).arrayBuffer());
    assert.ok(content.equals(data));
    const listed = [];
    for await (const f of client.files.list({ purpose: "user_data", limit: 2 })) listed.push(f.id);
    assert.ok(listed.includes(file.id));
    await client.files.delete(file.id);
    fs.rmSync(dir, { recursive: true });
  });
}
