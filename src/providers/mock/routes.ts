// Which answer a POST to the mock gets, by path: chat completions or embeddings. Both transports
// (the in-process dispatcher and the standalone server) route through here.
import type { MockBehaviour } from '../../config/schema.js';
import { planMockEmbeddings } from './embeddings.js';
import { nextMockId, planMockResponse, type MockRequest, type MockResponse } from './generate.js';

/** Plans the answer to one parsed request body (a JSON object). */
export type MockPlanner = (body: Record<string, unknown>, behaviour: MockBehaviour) => MockResponse;

const planChat: MockPlanner = (body, behaviour) => planMockResponse(body as MockRequest, behaviour, nextMockId());

/** The planner of a POST to `path` (without its query); undefined for a path the mock does not serve. */
export function mockPlannerFor(path: string): MockPlanner | undefined {
  if (path.endsWith('/chat/completions')) return planChat;
  if (path.endsWith('/embeddings')) return planMockEmbeddings;
  return undefined;
}
