// Draw N sketches one by one with @magenta/sketch, as a web page does, and time it.
//   node draw.js MODEL.gen.json N TEMPERATURE > OUT.json
// Each sketch: zeroState(), zeroInput(), then update / getPDF(state, TEMPERATURE) / sample
// until the end-of-sketch pen state or max_seq_len points. Out: {n, points, seconds, sketches}.
'use strict';
const {loadModel, output} = require('./common');

async function main() {
  const [path, n, temperature] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const model = await loadModel(path);
  const sketches = [];
  let points = 0;
  const start = process.hrtime.bigint();
  for (let k = 0; k < n; k++) {
    let state = model.zeroState();
    let input = model.zeroInput();
    const strokes = [];
    for (let t = 0; t < model.info.max_seq_len; t++) {
      state = model.update(input, state);
      input = model.sample(model.getPDF(state, temperature));
      if (input[4] === 1) break;
      strokes.push([input[0], input[1], input[3]]);
    }
    points += strokes.length;
    sketches.push(strokes);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  output({n, points, seconds, sketches});
  model.dispose();
}

main().catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
