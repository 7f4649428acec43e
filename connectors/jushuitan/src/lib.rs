//! quanyu connector for jushuitan (being written).
