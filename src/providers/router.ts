// Chooses a deployment for each attempt: weighted random among the healthy ones not yet tried,
// and puts a failing deployment in cool-down so later requests skip it for a while.
import type { Deployment, ModelRoute } from '../config/load.js';

export class DeploymentRouter {
  /** Deployment id -> time (ms, monotonic) until which it is skipped. */
  private readonly coolingUntil = new Map<string, number>();

  constructor(
    private readonly cooldownMs: number,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  /**
   * The next deployment to try, or undefined when every one was tried. When all untried
   * deployments are cooling down, one of them is still tried: a cold answer beats none.
   */
  pick(route: ModelRoute, tried: ReadonlySet<Deployment> | undefined): Deployment | undefined {
    const deployments = route.deployments;
    if (deployments.length === 1 && tried === undefined) return deployments[0];
    const now = this.now();
    let healthyWeight = 0;
    let anyUntried = false;
    for (const d of deployments) {
      if (tried?.has(d)) continue;
      anyUntried = true;
      if (!this.isCooling(d, now)) healthyWeight += d.weight;
    }
    if (!anyUntried) return undefined;
    const useHealthy = healthyWeight > 0;
    let total = healthyWeight;
    if (!useHealthy) for (const d of deployments) if (!tried?.has(d)) total += d.weight;
    let target = this.random() * total;
    let last: Deployment | undefined;
    for (const d of deployments) {
      if (tried?.has(d) || (useHealthy && this.isCooling(d, now))) continue;
      last = d;
      target -= d.weight;
      if (target < 0) return d;
    }
    return last;
  }

  markFailed(deployment: Deployment): void {
    if (this.cooldownMs > 0) this.coolingUntil.set(deployment.id, this.now() + this.cooldownMs);
  }

  markHealthy(deployment: Deployment): void {
    if (this.coolingUntil.size > 0) this.coolingUntil.delete(deployment.id);
  }

  isCooling(deployment: Deployment, now = this.now()): boolean {
    const until = this.coolingUntil.get(deployment.id);
    if (until === undefined) return false;
    if (until > now) return true;
    this.coolingUntil.delete(deployment.id);
    return false;
  }
}
