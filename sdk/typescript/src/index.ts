/** @mimids/sdk: the mimids client socket, Oblivious HTTP discovery and the MLS member side. */
export * from "./codec.js";
export * from "./frames.js";
export * from "./errors.js";
export * from "./socket.js";
export * from "./client.js";
export * from "./bhttp.js";
export * from "./ohttp.js";
export * from "./remote.js";
export * from "./storage.js";
export { Member, Group, partitionKeyOf, PARTITION_KEY_LABEL, PARTITION_KEY_LENGTH, EXT_LAST_RESORT } from "./member.js";
export type { GroupEvent, CommitOutcome } from "./member.js";
export * as messages from "./messages.js";
