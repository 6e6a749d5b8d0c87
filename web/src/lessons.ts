// Guided lessons: the seed document's story, one claim each, in its order. Each lesson's
// steps are in lessons-*.ts; their types in lesson-types.ts.
import { CILIUM_LESSON } from "./lessons-cilium";
import { CLUSTER_LESSONS } from "./lessons-cluster";
import { EGRESS_LESSON, FULL_TABLE_LESSON, NODEPORT_LESSON, POLICY_LESSON } from "./lessons-edge";
import { RACE_LESSON } from "./lessons-races";
import { CONNTRACK_REPLY_LESSON, SERVICE_LESSONS } from "./lessons-service";
import type { Lesson } from "./lesson-types";

export type { Lesson, LessonStep, Panel, Question } from "./lesson-types";

export const LESSONS: Lesson[] = [
  ...SERVICE_LESSONS,
  ...CLUSTER_LESSONS,
  EGRESS_LESSON,
  POLICY_LESSON,
  CONNTRACK_REPLY_LESSON,
  FULL_TABLE_LESSON,
  NODEPORT_LESSON,
  RACE_LESSON,
  CILIUM_LESSON,
];
