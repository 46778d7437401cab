/*
 * CRC-16/CCITT-FALSE (reveng: CRC-16/IBM-3740): width 16, poly 0x1021, init 0xFFFF, refin false, refout false,
 * xorout 0x0000, check("123456789") = 0x29B1. Table-driven (512 bytes of const data; an MCU short on flash can use
 * the bitwise loop in gb_crc16_update_bitwise, which gives the same result).
 */
#ifndef GB_CRC16_H
#define GB_CRC16_H

#include <stddef.h>
#include <stdint.h>

#define GB_CRC16_INIT 0xFFFFu

uint16_t gb_crc16_update(uint16_t crc, const uint8_t *data, size_t len);
uint16_t gb_crc16_update_bitwise(uint16_t crc, const uint8_t *data, size_t len);
uint16_t gb_crc16(const uint8_t *data, size_t len);

#endif
