// @keel/client: the generated SDK and types, plus sessions and live events.
export * from "./gen/index.js";
export { KeelSession, SessionExpiredError, type KeelSessionOptions, type Tokens } from "./session.js";
export {
  subscribe,
  Subscription,
  type ProjectEvent,
  type SubscribeOptions,
  type SubscriptionStatus,
} from "./realtime.js";
