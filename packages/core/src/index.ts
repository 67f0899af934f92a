export * from './column-policy.js';
export * from './contracts.js';
export * from './envelope.js';
export * from './errors.js';
export * from './events.js';
export * from './json.js';
export * from './logger.js';
export { pause } from './pause.js';
export * from './table-names.js';
