export { formatLine } from './line.js';
export { createStdoutSink, type StdoutSinkOptions } from './sink.js';
