/**
 * Arrow IPC stream framing for code that writes or splits streams itself: the continuation marker,
 * the end-of-stream marker, alignment, and the metadata of a record batch message, built with Arrow's
 * generated flatbuffer classes for callers that lay out the batch body themselves
 * (proto/result-batch.ts): Arrow's own writer re-encodes the schema and walks every column through
 * its visitors for each stream it writes.
 */
import * as flatbuffers from 'flatbuffers';
import { Buffer as BufferRegion } from 'apache-arrow/fb/buffer';
import { FieldNode } from 'apache-arrow/fb/field-node';
import { Message } from 'apache-arrow/fb/message';
import { MessageHeader } from 'apache-arrow/fb/message-header';
import { MetadataVersion } from 'apache-arrow/fb/metadata-version';
import { RecordBatch } from 'apache-arrow/fb/record-batch';

/** Arrow IPC aligns every message and body buffer to this many bytes. */
export const IPC_ALIGNMENT = 8;
/** The 4 bytes (little-endian) that start every message of the current IPC format, before its metadata length. */
export const IPC_CONTINUATION = 0xffffffff;
/** The end-of-stream marker: a continuation and a metadata length of 0. */
export const IPC_END_OF_STREAM: Readonly<Uint8Array> = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0);

export interface FieldNodeLayout {
  length: number;
  nullCount: number;
}

/** Where one body buffer lies, relative to the start of the body. */
export interface BufferLayout {
  offset: number;
  length: number;
}

export const alignedToIpc = (n: number) => Math.ceil(n / IPC_ALIGNMENT) * IPC_ALIGNMENT;

const builder = new flatbuffers.Builder(1024);

/**
 * The encapsulated message that precedes a record batch body: continuation marker, metadata length,
 * and the Message flatbuffer padded to IPC_ALIGNMENT.
 */
export function recordBatchMessage(rows: number, nodes: readonly FieldNodeLayout[], buffers: readonly BufferLayout[], bodyLength: number): Uint8Array {
  builder.clear();
  // Vectors of structs are written back to front.
  RecordBatch.startBuffersVector(builder, buffers.length);
  for (let i = buffers.length - 1; i >= 0; i--) BufferRegion.createBuffer(builder, BigInt(buffers[i]!.offset), BigInt(buffers[i]!.length));
  const bufferVector = builder.endVector();
  RecordBatch.startNodesVector(builder, nodes.length);
  for (let i = nodes.length - 1; i >= 0; i--) FieldNode.createFieldNode(builder, BigInt(nodes[i]!.length), BigInt(nodes[i]!.nullCount));
  const nodeVector = builder.endVector();
  RecordBatch.startRecordBatch(builder);
  RecordBatch.addLength(builder, BigInt(rows));
  RecordBatch.addNodes(builder, nodeVector);
  RecordBatch.addBuffers(builder, bufferVector);
  const header = RecordBatch.endRecordBatch(builder);
  Message.finishMessageBuffer(builder, Message.createMessage(builder, MetadataVersion.V5, MessageHeader.RecordBatch, header, BigInt(bodyLength), 0));
  const flatbuffer = builder.asUint8Array();

  const metadataLength = alignedToIpc(8 + flatbuffer.byteLength) - 8;
  const message = new Uint8Array(8 + metadataLength); // zeroed: the padding
  const view = new DataView(message.buffer);
  view.setUint32(0, IPC_CONTINUATION, true);
  view.setInt32(4, metadataLength, true);
  message.set(flatbuffer, 8);
  return message;
}
