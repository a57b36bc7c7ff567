// Per-step outputs of @magenta/sketch on real drawings, teacher-forced.
//   node pdfs.js JOBS.json > OUT.json
// JOBS.json: [{"model": "x.gen.json", "drawings": [[[dx, dy, p1, p2, p3], ...], ...]}, ...]
// with offsets in the data's own units (pixel factor 1, so the model sees dx / scale_factor).
// For every drawing the state starts at zeroState() and the first input is zeroInput(); after
// each input, getPDF(state, 1.0) at temperature 1 (its discrete temperature 0.5 + 1/2 = 1) gives
// the distribution of the next point. Out: per job, per drawing, per step the 123 numbers
// pi[20], muX[20], muY[20], sigmaX[20], sigmaY[20], corr[20], pen[3], to float32 precision.
'use strict';
const fs = require('fs');
const {loadModel, output} = require('./common');

const M = 20;
const f32 = (values) => Array.from(values, (v) => Number(Math.fround(v).toPrecision(9)));

async function main() {
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const results = [];
  for (const job of jobs) {
    const model = await loadModel(job.model);
    model.setPixelFactor(1.0);
    const drawings = [];
    for (const drawing of job.drawings) {
      let state = model.zeroState();
      const steps = [];
      for (const input of [model.zeroInput(), ...drawing]) {
        state = model.update(input, state);
        const pdf = model.getPDF(state, 1.0);
        // the library's sigmaY slice runs past its 20 values (slice(4M, 15M)): keep its 20
        steps.push(f32([...pdf.pi, ...pdf.muX, ...pdf.muY, ...pdf.sigmaX,
          ...pdf.sigmaY.slice(0, M), ...pdf.corr, ...pdf.pen]));
      }
      drawings.push(steps);
    }
    results.push({model: job.model, info: model.info, drawings});
    model.dispose();
  }
  output(results);
}

main().catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
