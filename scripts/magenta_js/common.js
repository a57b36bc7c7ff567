// Load a .gen.json with @magenta/sketch's own initialize(): the library fetches the file over
// HTTP (as in a browser), here from a server on 127.0.0.1 that serves that one file.
'use strict';
const fs = require('fs');
const http = require('http');

// tfjs prints a banner suggesting its native node backend; keep stdout for our JSON
const log = console.log;
console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
const sketch = require('@magenta/sketch');

async function loadModel(path) {
  const body = fs.readFileSync(path);
  const server = http.createServer((req, res) => {
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const model = new sketch.SketchRNN(`http://127.0.0.1:${server.address().port}/model.gen.json`);
    await model.initialize();
    return model;
  } finally {
    server.close();
  }
}

function output(value) {
  log(JSON.stringify(value));
}

module.exports = {loadModel, output, sketch};
